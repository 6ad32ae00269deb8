"""What each verdict carries (rule, reason, whether each request must be looked at), at
every step of the policy's order, and what an approval keeps of the policy it extends."""

from __future__ import annotations

import ipaddress

import pytest

from sandkit.kits.model import NetworkRule, Origin, Phase
from sandkit.net.actions import Action, DefaultPolicy
from sandkit.net.policy import APPROVAL, Policy, Reason, Verdict, baseline_rules

ORIGIN = Origin(kit="k", file="/k/spec.yaml", line=4, column=3)
ip = ipaddress.ip_address


def rule(pattern: str, **extra: object) -> NetworkRule:
    return NetworkRule(pattern=pattern, origin=ORIGIN, **extra)


POST_DENIED = rule("api.test", methods=("POST",))


def test_a_verdict_describes_its_rule_and_where_it_was_written() -> None:
    assert Verdict(Action.DENY, Reason.DEFAULT_DENY).describe() == "default-deny"
    allowed = Verdict(Action.ALLOW, Reason.ALLOW_RULE, rule("a.test"))
    assert allowed.describe() == "allow-rule 'a.test' from k (/k/spec.yaml:4:3)"


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        (Policy([rule("api.test")], [], DefaultPolicy.DENY_ALL), Reason.ALLOW_RULE),
        (Policy([], [], DefaultPolicy.ALLOW_ALL), Reason.DEFAULT_ALLOW),
        (Policy([], [], DefaultPolicy.BALANCED, baseline_rules(["api.test"])), Reason.BASELINE),
        (
            Policy([], [], DefaultPolicy.DENY_ALL).with_approval("api.test", Action.ALLOW),
            Reason.APPROVED,
        ),
    ],
)
def test_a_connection_is_inspected_only_when_a_rule_judges_requests(
    policy: Policy, reason: Reason
) -> None:
    plain = policy.decide("api.test", 443)
    assert (plain.action, plain.reason, plain.inspect) == (Action.ALLOW, reason, False)
    assert plain.inspect is False
    strict = Policy(policy.allow, [POST_DENIED], policy.default, policy.baseline, policy.approvals)
    verdict = strict.decide("api.test", 443)
    assert (verdict.action, verdict.reason, verdict.inspect) == (Action.ALLOW, reason, True)
    assert verdict.rule == plain.rule
    # Request by request: the denied method is denied by that rule, the others pass.
    denied = strict.decide("api.test", 443, method="POST", path="/v1")
    assert (denied.action, denied.reason, denied.rule) == (
        Action.DENY,
        Reason.DENY_RULE,
        POST_DENIED,
    )
    assert strict.decide("api.test", 443, method="GET", path="/v1").action is Action.ALLOW


def test_a_restricted_deny_rule_does_not_hide_the_deny_rules_after_it() -> None:
    policy = Policy([rule("api.test")], [POST_DENIED, rule("api.test")], DefaultPolicy.ALLOW_ALL)
    verdict = policy.decide("api.test", 443)
    assert (verdict.action, verdict.reason, verdict.rule) == (
        Action.DENY,
        Reason.DENY_RULE,
        policy.deny[1],
    )


def test_an_allow_rule_for_some_requests_names_itself_at_each_step() -> None:
    reads = rule("api.test", methods=("GET",), paths=("/v1/**",))
    policy = Policy([reads], [], DefaultPolicy.DENY_ALL)
    connection = policy.decide("api.test", 443)
    assert (connection.action, connection.reason, connection.rule, connection.inspect) == (
        Action.ALLOW,
        Reason.ALLOW_RULE,
        reads,
        True,
    )
    request = policy.decide("api.test", 443, method="GET", path="/v1/models")
    assert (request.action, request.reason, request.rule) == (
        Action.ALLOW,
        Reason.ALLOW_RULE,
        reads,
    )
    assert policy.decide("api.test", 443, method="GET").action is Action.DENY  # "/" is not /v1
    odd = policy.decide("api.test", 443, method="GET", path="/v1/%2e%2e/%2e%2e/x")
    assert (odd.action, odd.reason, odd.rule) == (Action.DENY, Reason.BAD_TARGET, reads)
    # No path given means the root, and a rule for the root allows it.
    root = Policy([rule("api.test", methods=("GET",), paths=("/",))], [], DefaultPolicy.DENY_ALL)
    assert root.decide("api.test", 443, method="GET").action is Action.ALLOW


def test_deny_rules_of_a_phase_apply_in_that_phase() -> None:
    install_only = rule("pkg.test", phase=Phase.INSTALL)
    policy = Policy([rule("pkg.test")], [install_only], DefaultPolicy.DENY_ALL)
    assert policy.decide("pkg.test", 443, phase=Phase.INSTALL).reason is Reason.DENY_RULE
    assert policy.decide("pkg.test", 443, phase=Phase.RUNTIME).reason is Reason.ALLOW_RULE


def test_a_network_rule_with_ports_judges_the_resolved_address_on_those_ports() -> None:
    policy = Policy([rule("**")], [rule("10.0.0.0/8:80-443")], DefaultPolicy.DENY_ALL)
    for port, action in (
        (80, Action.DENY),
        (200, Action.DENY),
        (443, Action.DENY),
        (444, Action.ALLOW),
    ):
        verdict = policy.decide("name.test", port, address=ip("10.1.2.3"))
        assert verdict.action is action, port


def test_an_ipv6_address_is_judged_as_itself() -> None:
    policy = Policy([rule("**")], [rule("fd00::/8")], DefaultPolicy.DENY_ALL)
    assert policy.decide("name.test", 443, address=ip("fd00::1")).action is Action.DENY
    assert policy.decide("name.test", 443, address=ip("2001:db8::1")).action is Action.ALLOW
    mapped = Policy([rule("**")], [rule("127.0.0.0/8")], DefaultPolicy.DENY_ALL)
    assert mapped.decide("name.test", 443, address=ip("::ffff:127.0.0.1")).action is Action.DENY


def test_an_approval_keeps_the_policy_it_extends() -> None:
    registry = baseline_rules(["registry.test"])
    balanced = Policy([], [], DefaultPolicy.BALANCED, registry)
    approved = balanced.with_approval("other.test", Action.ALLOW)
    assert approved.decide("registry.test", 443).reason is Reason.BASELINE
    assert approved.decide("other.test", 443).reason is Reason.APPROVED
    assert (approved.default, approved.baseline) == (DefaultPolicy.BALANCED, registry)
    open_ = Policy([], [], DefaultPolicy.ALLOW_ALL).with_approval("x.test", Action.DENY)
    assert open_.decide("anything.test", 443).reason is Reason.DEFAULT_ALLOW
    assert open_.decide("x.test", 443).reason is Reason.REFUSED


def test_an_approval_may_name_one_port() -> None:
    policy = Policy([], [], DefaultPolicy.DENY_ALL).with_approval("api.test:8443", Action.ALLOW)
    assert policy.approvals == {"api.test:8443": Action.ALLOW}
    approved = policy.decide("api.test", 8443)
    assert (approved.action, approved.reason) == (Action.ALLOW, Reason.APPROVED)
    assert approved.rule is not None and approved.rule.origin == APPROVAL
    assert policy.decide("api.test", 443).action is Action.DENY


def test_an_address_a_person_refused_is_refused_in_every_spelling() -> None:
    policy = Policy([rule("**")], [], DefaultPolicy.DENY_ALL).with_approval("10.1.2.3", Action.DENY)
    assert policy.needs_address
    # 167838211 is 10.1.2.3 written as one number; the proxy passes where it resolved to.
    verdict = policy.decide("167838211", 443, address=ip("10.1.2.3"))
    assert verdict.action is Action.ALLOW  # the allow rule comes first
    refused = Policy([], [], DefaultPolicy.DENY_ALL).with_approval("10.1.2.3", Action.DENY)
    verdict = refused.decide("167838211", 443, address=ip("10.1.2.3"))
    assert (verdict.action, verdict.reason) == (Action.DENY, Reason.REFUSED)


def test_baseline_hosts_with_a_port_or_an_address() -> None:
    baseline = baseline_rules(["reg.test:8443", "10.9.9.9"])
    policy = Policy([], [], DefaultPolicy.BALANCED, baseline)
    assert policy.decide("reg.test", 8443).reason is Reason.BASELINE
    assert policy.decide("reg.test", 443).reason is Reason.DEFAULT_DENY
    by_address = policy.decide("mirror.lan", 443, address=ip("10.9.9.9"))
    assert (by_address.reason, by_address.rule) == (Reason.BASELINE, baseline[-1])
