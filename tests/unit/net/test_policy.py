"""The policy core, exhaustively: order, defaults, phases, approvals, method/path rules."""

from __future__ import annotations

import pytest

from sandkit.kits.model import NetworkRule, Origin, Phase
from sandkit.net.actions import Action, DefaultPolicy
from sandkit.net.policy import Policy, Reason

ORIGIN = Origin(kit="k", file="/k/spec.yaml", line=3, column=5)


def r(
    pattern: str,
    phase: Phase = Phase.ANY,
    methods: tuple[str, ...] = (),
    paths: tuple[str, ...] = (),
) -> NetworkRule:
    return NetworkRule(pattern=pattern, phase=phase, methods=methods, paths=paths, origin=ORIGIN)


ALLOW = [
    r("a.com"),
    r("*.b.com"),
    r("**.c.com"),
    r("d.com:8443"),
    r("10.0.0.0/8"),
    r("[fd00::1]:443"),
]
DENY = [r("bad.a.com"), r("x.b.com"), r("c.com")]

CASES = [
    # default, host, port, can_ask, action, reason, rule
    (DefaultPolicy.DENY_ALL, "a.com", 443, False, Action.ALLOW, Reason.ALLOW_RULE, "a.com"),
    (DefaultPolicy.DENY_ALL, "a.com", 80, False, Action.ALLOW, Reason.ALLOW_RULE, "a.com"),
    (DefaultPolicy.DENY_ALL, "y.b.com", 443, False, Action.ALLOW, Reason.ALLOW_RULE, "*.b.com"),
    (DefaultPolicy.DENY_ALL, "x.b.com", 443, False, Action.DENY, Reason.DENY_RULE, "x.b.com"),
    (DefaultPolicy.DENY_ALL, "b.com", 443, False, Action.DENY, Reason.DEFAULT_DENY, None),
    (DefaultPolicy.DENY_ALL, "p.q.c.com", 443, False, Action.ALLOW, Reason.ALLOW_RULE, "**.c.com"),
    (DefaultPolicy.DENY_ALL, "c.com", 443, False, Action.DENY, Reason.DENY_RULE, "c.com"),
    (DefaultPolicy.DENY_ALL, "d.com", 8443, False, Action.ALLOW, Reason.ALLOW_RULE, "d.com:8443"),
    (DefaultPolicy.DENY_ALL, "d.com", 443, False, Action.DENY, Reason.DEFAULT_DENY, None),
    (
        DefaultPolicy.DENY_ALL,
        "10.2.3.4",
        5432,
        False,
        Action.ALLOW,
        Reason.ALLOW_RULE,
        "10.0.0.0/8",
    ),
    (
        DefaultPolicy.DENY_ALL,
        "fd00::1",
        443,
        False,
        Action.ALLOW,
        Reason.ALLOW_RULE,
        "[fd00::1]:443",
    ),
    (DefaultPolicy.DENY_ALL, "e.com", 443, True, Action.ASK, Reason.DEFAULT_DENY, None),
    (DefaultPolicy.BALANCED, "e.com", 443, False, Action.DENY, Reason.DEFAULT_DENY, None),
    (DefaultPolicy.BALANCED, "e.com", 443, True, Action.ASK, Reason.DEFAULT_DENY, None),
    (
        DefaultPolicy.BALANCED,
        "api.anthropic.com",
        443,
        True,
        Action.ALLOW,
        Reason.BASELINE,
        "api.anthropic.com",
    ),
    (
        DefaultPolicy.DENY_ALL,
        "api.anthropic.com",
        443,
        False,
        Action.DENY,
        Reason.DEFAULT_DENY,
        None,
    ),
    (DefaultPolicy.ALLOW_ALL, "e.com", 443, False, Action.ALLOW, Reason.DEFAULT_ALLOW, None),
    (DefaultPolicy.ALLOW_ALL, "bad.a.com", 443, False, Action.DENY, Reason.DENY_RULE, "bad.a.com"),
]


@pytest.mark.parametrize(("default", "host", "port", "can_ask", "action", "reason", "rule"), CASES)
def test_decide(
    default: DefaultPolicy,
    host: str,
    port: int,
    can_ask: bool,
    action: Action,
    reason: Reason,
    rule: str | None,
) -> None:
    verdict = Policy(ALLOW, DENY, default).decide(host, port, can_ask=can_ask)
    assert (verdict.action, verdict.reason) == (action, reason)
    assert (verdict.rule.pattern if verdict.rule else None) == rule
    if verdict.rule is not None and verdict.rule.origin is ORIGIN:
        assert "from k (/k/spec.yaml:3:5)" in verdict.describe()


def test_deny_beats_allow_whatever_the_order() -> None:
    both = [r("same.com")]
    assert Policy(both, both, DefaultPolicy.ALLOW_ALL).decide("same.com", 443).action is Action.DENY


def test_phases() -> None:
    policy = Policy(
        [r("deb.example", Phase.INSTALL), r("api.example", Phase.RUNTIME)],
        [],
        DefaultPolicy.DENY_ALL,
    )
    assert policy.decide("deb.example", 80, phase=Phase.INSTALL).action is Action.ALLOW
    assert policy.decide("deb.example", 80, phase=Phase.RUNTIME).action is Action.DENY
    assert policy.decide("api.example", 443, phase=Phase.INSTALL).action is Action.DENY
    assert policy.decide("api.example", 443, phase=Phase.RUNTIME).action is Action.ALLOW


def test_approvals_come_after_rules_and_before_the_default() -> None:
    policy = Policy(ALLOW, DENY, DefaultPolicy.DENY_ALL)
    approved = policy.with_approval("e.com", Action.ALLOW).with_approval("x.b.com", Action.ALLOW)
    assert approved.decide("e.com", 443).reason is Reason.APPROVED
    assert approved.decide("x.b.com", 443).action is Action.DENY  # a deny rule still wins
    refused = policy.with_approval("a.com", Action.DENY).with_approval("f.com", Action.DENY)
    assert refused.decide("a.com", 443).action is Action.ALLOW  # allow rules come first
    assert refused.decide("f.com", 443, can_ask=True).reason is Reason.REFUSED
    assert policy.decide("e.com", 443).action is Action.DENY  # the original is unchanged
    with pytest.raises(ValueError):
        policy.with_approval("*", Action.ALLOW)


def test_method_and_path_rules_need_inspection() -> None:
    policy = Policy(
        [r("api.x", methods=("GET",), paths=("/v1/*",))],
        [r("api.x", methods=("DELETE",))],
        DefaultPolicy.DENY_ALL,
    )
    tunnel = policy.decide("api.x", 443)
    assert tunnel.action is Action.ALLOW and tunnel.inspect
    assert policy.decide("api.x", 443, method="GET", path="/v1/models").action is Action.ALLOW
    assert policy.decide("api.x", 443, method="GET", path="/v2/models").action is Action.DENY
    assert policy.decide("api.x", 443, method="POST", path="/v1/x").action is Action.DENY
    denied = policy.decide("api.x", 443, method="DELETE", path="/v1/x")
    assert (denied.action, denied.reason) == (Action.DENY, Reason.DENY_RULE)
    anything = Policy([r("api.y", methods=("ANY",))], [], DefaultPolicy.DENY_ALL)
    assert anything.decide("api.y", 443, method="PATCH", path="/").action is Action.ALLOW


@pytest.mark.parametrize(
    ("pattern", "explicit"),
    [("a.com", True), ("10.0.0.0/8", True), ("*.b.com", False), ("**", False)],
)
def test_explicit(pattern: str, explicit: bool) -> None:
    policy = Policy([r(pattern)], [], DefaultPolicy.DENY_ALL)
    host = {"a.com": "a.com", "10.0.0.0/8": "10.1.1.1", "*.b.com": "x.b.com", "**": "z.org"}[
        pattern
    ]
    assert policy.decide(host, 443).explicit is explicit
