"""The policy judges what a request means, not how it is written: normalised paths
for method/path rules, resolved addresses for address and network rules."""

from __future__ import annotations

import ipaddress

import pytest

from sandkit.kits.model import NetworkRule, Origin
from sandkit.net.actions import Action, DefaultPolicy
from sandkit.net.guard import blocked_body
from sandkit.net.policy import Policy, Reason

ORIGIN = Origin(kit="k", file="/k/spec.yaml", line=3, column=5)


def r(pattern: str, methods: tuple[str, ...] = (), paths: tuple[str, ...] = ()) -> NetworkRule:
    return NetworkRule(pattern=pattern, methods=methods, paths=paths, origin=ORIGIN)


# api.x: reads under /v1 allowed, /admin denied whatever the method.
PATHS = Policy(
    [r("api.x", ("GET",), ("/v1/**",)), r("api.x", ("POST",), ("/v1/*/items",))],
    [r("api.x", ("ANY",), ("/admin", "/admin/**"))],
    DefaultPolicy.DENY_ALL,
)

TRICKS = [
    "/admin",
    "//admin",
    "/./admin",
    "/%61dmin",
    "/%61%64%6d%69%6e",
    "/v1/../admin",
    "/v1/%2e%2e/admin",
    "/v1/%2E%2E/admin/",
    "/v1/.%2e/admin",
    "/v1//..//admin",
    "/admin/",
    "/admin/users/1",
    "/admin;x=1",
    "/v1/..;/admin",
    "http://api.x/v1/../admin",
    "https://api.x//admin?q=1",
]


@pytest.mark.parametrize("target", TRICKS)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_no_spelling_of_a_denied_path_gets_through(target: str, method: str) -> None:
    # The host is allowed; only the deny rule stands between the request and /admin.
    policy = Policy([r("api.x")], PATHS.deny, DefaultPolicy.DENY_ALL)
    for p in (policy, PATHS):
        verdict = p.decide("api.x", 443, method=method, path=target)
        assert verdict.action is Action.DENY
        assert verdict.reason in (Reason.DENY_RULE, Reason.BAD_TARGET)
    assert policy.decide("api.x", 443, method=method, path="/v1/admin").action is Action.ALLOW


@pytest.mark.parametrize(
    ("method", "target", "action"),
    [
        ("GET", "/v1/models", Action.ALLOW),
        ("GET", "/v1/a/b/c?x=/admin", Action.ALLOW),  # the query is not the path
        ("GET", "//v1//models", Action.ALLOW),
        ("GET", "/%76%31/models", Action.ALLOW),
        ("GET", "/v2/models", Action.DENY),
        ("GET", "/v1/../v2/models", Action.DENY),  # fnmatch("/v1/*") let this through
        ("GET", "/v1/%2e%2e/v2", Action.DENY),
        ("POST", "/v1/x/items", Action.ALLOW),
        ("POST", "/v1/x/y/items", Action.DENY),  # * stays within one segment
        ("POST", "/v1/x/items/../../../v2/items", Action.DENY),
        ("POST", "/v1/x;p/items", Action.ALLOW),  # both readings are allowed
        ("POST", "/v1/..;/items", Action.DENY),  # one reading is /items: not allowed
    ],
)
def test_allowed_paths_are_judged_after_normalisation(
    method: str, target: str, action: Action
) -> None:
    assert PATHS.decide("api.x", 443, method=method, path=target).action is action


@pytest.mark.parametrize(
    ("target", "detail"),
    [
        ("/v1/a%2fb", "encoded slash"),
        ("/v1/%00", "encoded NUL"),
        ("/../v1/x", "climbs above the root"),
        ("/v1/%zz", "invalid percent escape"),
    ],
)
def test_a_path_that_cannot_be_normalised_is_refused(target: str, detail: str) -> None:
    verdict = PATHS.decide("api.x", 443, method="GET", path=target)
    assert (verdict.action, verdict.reason) == (Action.DENY, Reason.BAD_TARGET)
    assert verdict.detail is not None and detail in verdict.detail
    assert verdict.rule is not None and verdict.rule.pattern == "api.x"
    body = blocked_body("api.x", 443, verdict, DefaultPolicy.DENY_ALL)
    assert detail in body and "(/k/spec.yaml:3)" in body and "send the plain path" in body


def test_hosts_without_path_rules_never_look_at_the_path() -> None:
    # GitLab's API puts %2F in paths: only a path rule may refuse them.
    policy = Policy([r("gitlab.x")], [], DefaultPolicy.DENY_ALL)
    verdict = policy.decide("gitlab.x", 443, method="GET", path="/api/v4/projects/a%2Fb")
    assert verdict.action is Action.ALLOW


def test_star_no_longer_crosses_a_slash() -> None:
    policy = Policy([r("api.x", ("GET",), ("/v1/*",))], [], DefaultPolicy.DENY_ALL)
    assert policy.decide("api.x", 443, method="GET", path="/v1/a").action is Action.ALLOW
    assert policy.decide("api.x", 443, method="GET", path="/v1/a/b").action is Action.DENY


# -- addresses -----------------------------------------------------------------------

A = ipaddress.ip_address


@pytest.mark.parametrize("address", ["93.184.216.34", "::ffff:93.184.216.34", "::ffff:5db8:d822"])
@pytest.mark.parametrize("host", ["1572395042", "0x5db8d822", "93.184.216.34.nip.example"])
def test_a_denied_address_is_denied_whatever_name_led_there(host: str, address: str) -> None:
    policy = Policy([r("**")], [r("93.184.216.34")], DefaultPolicy.ALLOW_ALL)
    assert policy.needs_address
    assert policy.decide(host, 80).action is Action.ALLOW  # the text alone says nothing
    verdict = policy.decide(host, 80, address=A(address))
    assert (verdict.action, verdict.reason) == (Action.DENY, Reason.DENY_RULE)


def test_a_denied_network_and_its_ports() -> None:
    policy = Policy([], [r("93.184.216.0/24:443")], DefaultPolicy.ALLOW_ALL)
    assert policy.decide("x.example", 443, address=A("93.184.216.7")).action is Action.DENY
    assert policy.decide("x.example", 80, address=A("93.184.216.7")).action is Action.ALLOW
    assert policy.decide("x.example", 443, address=A("93.184.217.7")).action is Action.ALLOW
    mapped = Policy([], [r("::ffff:93.184.216.0/120")], DefaultPolicy.ALLOW_ALL)
    assert mapped.decide("x.example", 443, address=A("93.184.216.7")).action is Action.DENY
    v6 = Policy([], [r("2001:db8::/32")], DefaultPolicy.ALLOW_ALL)
    assert v6.decide("x.example", 443, address=A("2001:db8::1")).action is Action.DENY
    assert v6.decide("x.example", 443, address=A("93.184.216.7")).action is Action.ALLOW


def test_an_allowed_network_allows_the_names_that_resolve_into_it() -> None:
    policy = Policy([r("10.0.0.0/8")], [], DefaultPolicy.DENY_ALL)
    verdict = policy.decide("db.internal", 5432, address=A("10.1.2.3"))
    assert (verdict.action, verdict.reason) == (Action.ALLOW, Reason.ALLOW_RULE)
    assert verdict.explicit  # the user named that range: the SSRF guard lets it through
    assert policy.decide("db.internal", 5432, address=A("11.1.2.3")).action is Action.DENY
    assert policy.decide("2130706433", 80, address=A("127.0.0.1")).action is Action.DENY


def test_deny_by_address_beats_allow_by_name() -> None:
    policy = Policy([r("api.x")], [r("127.0.0.0/8")], DefaultPolicy.DENY_ALL)
    assert policy.decide("api.x", 443).action is Action.ALLOW
    assert policy.decide("api.x", 443, address=A("127.0.0.1")).action is Action.DENY


def test_policies_without_address_rules_need_no_address() -> None:
    assert not Policy([r("a.x"), r("*.b.x")], [r("c.x")], DefaultPolicy.BALANCED).needs_address
    assert Policy(
        [r("a.x")], [], DefaultPolicy.DENY_ALL, approvals={"10.0.0.1": Action.ALLOW}
    ).needs_address
