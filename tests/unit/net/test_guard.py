"""Which addresses are internal, how names are resolved (pins first), and the 403 body
that tells the agent what blocked it, branch by branch, in full."""

from __future__ import annotations

import ipaddress

import pytest

from sandkit.kits.model import NetworkRule, Origin
from sandkit.net.actions import Action, DefaultPolicy
from sandkit.net.guard import Resolver, blocked_body, is_internal, mismatch_body
from sandkit.net.policy import APPROVAL, Reason, Verdict

ip = ipaddress.ip_address
RULE = NetworkRule(pattern="x.test", origin=Origin(kit="k", file="/k/spec.yaml", line=9, column=5))
LAST = "Do not retry through another route; tell the user which host you need and why.\n"


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # shared address space
        ("224.0.0.1", True),  # multicast
        ("8.8.8.8", False),
        ("::1", True),
        ("fd00::1", True),
        ("fe80::1", True),
        ("2606:4700::1111", False),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped: judged as the IPv4 address
        ("::ffff:8.8.8.8", False),
        ("ff02::1", True),
    ],
)
def test_internal_addresses(address: str, internal: bool) -> None:
    assert is_internal(ip(address)) is internal


async def test_pins_come_first_and_literals_need_no_lookup() -> None:
    resolver = Resolver({"Pinned.Test": "127.0.0.5"})
    assert resolver.pinned("pinned.test") and resolver.pinned("PINNED.test")
    assert not resolver.pinned("other.test")
    assert await resolver.resolve("PINNED.test", 443) == [ip("127.0.0.5")]
    assert await resolver.resolve("[::1]", 443) == [ip("::1")]
    assert await resolver.resolve("::1", 443) == [ip("::1")]
    assert await resolver.resolve("10.0.0.1", 443) == [ip("10.0.0.1")]
    assert await resolver.resolve("localhost", 443) != []


def body(verdict: Verdict | None, detail: str | None = None) -> list[str]:
    return blocked_body("x.test", 443, verdict, DefaultPolicy.DENY_ALL, detail).splitlines(True)


def test_a_path_that_cannot_be_normalised() -> None:
    verdict = Verdict(
        Action.DENY, Reason.BAD_TARGET, RULE, detail="the path holds an encoded NUL (%00)"
    )
    assert body(verdict) == [
        "Blocked by sandkit network policy: x.test:443\n",
        "Reason: the path holds an encoded NUL (%00)\n",
        "The rule 'x.test' in kit k (/k/spec.yaml:9) allows or denies paths on this host, "
        "and this path could mean different things to different servers, so it is refused.\n",
        "To get through: send the plain path (no '..', no encoded '/' or NUL, valid %XX escapes).\n",
        LAST,
    ]
    bare = Verdict(Action.DENY, Reason.BAD_TARGET, RULE)
    assert body(bare)[1] == "Reason: the request path cannot be normalised\n"


def test_an_internal_address() -> None:
    assert body(None, "x.test resolves to 10.0.0.1, a private address") == [
        "Blocked by sandkit network policy: x.test:443\n",
        "Reason: x.test resolves to 10.0.0.1, a private address\n",
        "To allow it: name the host exactly ('x.test') in permissions.network.allow of a kit; "
        "wildcard rules and the default policy never reach private addresses.\n",
        LAST,
    ]


def test_a_deny_rule() -> None:
    assert body(Verdict(Action.DENY, Reason.DENY_RULE, RULE)) == [
        "Blocked by sandkit network policy: x.test:443\n",
        "Rule: deny 'x.test' in kit k (/k/spec.yaml:9)\n",
        "To allow it: a person must remove that deny rule; deny rules win over allow rules.\n",
        LAST,
    ]


def test_a_person_refused_it() -> None:
    refusal = NetworkRule(pattern="x.test", origin=APPROVAL)
    assert body(Verdict(Action.DENY, Reason.REFUSED, refusal)) == [
        "Blocked by sandkit network policy: x.test:443\n",
        "Reason: a person refused this host for this sandbox.\n",
        LAST,
    ]


@pytest.mark.parametrize("verdict", [None, Verdict(Action.DENY, Reason.DEFAULT_DENY)])
def test_no_rule_allows_it(verdict: Verdict | None) -> None:
    assert body(verdict) == [
        "Blocked by sandkit network policy: x.test:443\n",
        "Reason: no rule allows this host and the default policy is 'deny-all'.\n",
        "To allow it: a person can add 'x.test' to permissions.network.allow in a kit, "
        "or approve the request when sandkit asks.\n",
        LAST,
    ]


def test_a_request_for_another_host_than_its_tunnels() -> None:
    text = mismatch_body("api.test:443", "evil.test", "Host header")
    assert text.startswith("Blocked by sandkit: host mismatch.\n")
    assert (
        "This connection is a tunnel to api.test:443 (CONNECT api.test:443), but the request names evil.test in its Host header.\n"
        in text
    )
    assert "make a separate request to https://evil.test/ through the proxy" in text
