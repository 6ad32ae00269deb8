from __future__ import annotations

import pytest

from sandkit.kits.hostrules import RuleKind, parse_rule

MATCHES = [
    # rule, host, port, matches
    ("example.com", "example.com", 443, True),
    ("example.com", "EXAMPLE.com.", 80, True),
    ("example.com", "www.example.com", 443, False),
    ("example.com", "example.co", 443, False),
    ("example.com:443", "example.com", 443, True),
    ("example.com:443", "example.com", 80, False),
    ("example.com:80-443", "example.com", 200, True),
    ("example.com:80-443", "example.com", 8080, False),
    ("example.com:*", "example.com", 22, True),
    ("*.example.com", "a.example.com", 443, True),
    ("*.example.com", "example.com", 443, False),
    ("*.example.com", "a.b.example.com", 443, False),
    ("*.example.com", "aexample.com", 443, False),
    ("**.example.com", "a.b.example.com", 443, True),
    ("**.example.com", "a.example.com", 443, True),
    ("**.example.com", "example.com", 443, False),
    ("**.example.com", "evil-example.com", 443, False),
    ("**", "anything.at.all", 1, True),
    ("**:443", "anything", 80, False),
    ("10.0.0.0/8", "10.1.2.3", 443, True),
    ("10.0.0.0/8", "11.1.2.3", 443, False),
    ("10.0.0.0/8", "example.com", 443, False),
    ("10.1.2.3", "10.1.2.3", 443, True),
    ("10.1.2.3:8080", "10.1.2.3", 443, False),
    ("[fd00::1]:443", "fd00::1", 443, True),
    ("[fd00::1]:443", "[fd00::1]", 443, True),
    ("[fd00::1]:443", "fd00::2", 443, False),
    ("fd00::/8", "fd12::5", 80, True),
    ("fd00::/8", "10.0.0.1", 80, False),
    ("::1", "::1", 80, True),
]


@pytest.mark.parametrize(("rule", "host", "port", "expected"), MATCHES)
def test_matches(rule: str, host: str, port: int, expected: bool) -> None:
    assert parse_rule(rule).matches(host, port) is expected


KINDS = [
    ("**", RuleKind.ANY, False),
    ("a.com", RuleKind.EXACT, True),
    ("*.a.com", RuleKind.ONE_LABEL, False),
    ("**.a.com", RuleKind.ANY_DEPTH, False),
    ("10.0.0.0/8", RuleKind.NETWORK, True),
    ("[::1]", RuleKind.NETWORK, True),
]


@pytest.mark.parametrize(("rule", "kind", "explicit"), KINDS)
def test_kinds(rule: str, kind: RuleKind, explicit: bool) -> None:
    parsed = parse_rule(rule)
    assert parsed.kind is kind
    assert parsed.names_host_explicitly is explicit


INVALID = [
    ("", "empty network rule"),
    ("*", "'*' is not a rule: write '**' to allow every host"),
    ("http://a.com", "looks like a URL"),
    ("a.com:0", "ports must be between 1 and 65535"),
    ("a.com:443-80", "ports must be between 1 and 65535, low to high"),
    ("a.com:https", "the port must be a number"),
    ("a*.com", "a wildcard may only be the whole first label"),
    ("a.*.com", "a wildcard may only be the whole first label"),
    ("-a.com", "is not a valid host name"),
    ("a..com", "is not a valid host name"),
    ("a.com/path", "is neither a host name nor an address range"),
    ("[::1", "missing ']'"),
    ("[::1]x", "expected ':PORT' after ']'"),
]


@pytest.mark.parametrize(("rule", "message"), INVALID)
def test_invalid(rule: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_rule(rule)
    assert message in str(caught.value)


EDGE_MATCHES = [
    ("*.example.com", "a..example.com", 443, False),  # an empty label is no label
    ("*.example.com:443", "a.example.com", 80, False),
    ("**.example.com:443", "a.b.example.com", 80, False),
    ("**.example.com:443", "a.b.example.com", 443, True),
    ("Example.COM.", "example.com", 443, True),
    ("10.1.2.3/8", "10.200.0.1", 443, True),  # host bits set: the network it lies in
]


@pytest.mark.parametrize(("rule", "host", "port", "expected"), EDGE_MATCHES)
def test_edge_matches(rule: str, host: str, port: int, expected: bool) -> None:
    assert parse_rule(rule).matches(host, port) is expected


PARSED = [
    # text, kind, host, ports
    ("  **  ", RuleKind.ANY, "", None),
    ("Example.COM.", RuleKind.EXACT, "example.com", None),
    ("*.Example.com:443", RuleKind.ONE_LABEL, "example.com", (443, 443)),
    ("**.example.com:80-443", RuleKind.ANY_DEPTH, "example.com", (80, 443)),
    ("10.1.2.3/8", RuleKind.NETWORK, "10.0.0.0/8", None),
    ("[fd00::1]:443", RuleKind.NETWORK, "fd00::1/128", (443, 443)),
    ("a.com:1", RuleKind.EXACT, "a.com", (1, 1)),
    ("a.com:65535", RuleKind.EXACT, "a.com", (65535, 65535)),
    ("a.com:*", RuleKind.EXACT, "a.com", None),
    (("a" * 63 + ".") * 3 + "a" * 61, RuleKind.EXACT, ("a" * 63 + ".") * 3 + "a" * 61, None),
]


@pytest.mark.parametrize(("text", "kind", "host", "ports"), PARSED)
def test_parsed_fields(text: str, kind: RuleKind, host: str, ports: tuple[int, int] | None) -> None:
    parsed = parse_rule(text)
    assert (parsed.text, parsed.kind, parsed.host, parsed.ports) == (
        text.strip(),
        kind,
        host,
        ports,
    )
    assert len(("a" * 63 + ".") * 3 + "a" * 61) == 253  # the longest name DNS allows


EXACT_ERRORS = [
    ("  ", "empty network rule"),
    (
        "**.a*.com",
        "'**.a*.com': a wildcard may only be the whole first label ('*.example.com' or '**.example.com')",
    ),
    ("[::1]:x", "'[::1]:x': the port must be a number, a range like 80-443, or '*'"),
    ("[::1]:80]", "'[::1]:80]': the port must be a number, a range like 80-443, or '*'"),
    ("a.com:0", "'a.com:0': ports must be between 1 and 65535, low to high"),
    ("a.com:65536", "'a.com:65536': ports must be between 1 and 65535, low to high"),
    ("x10.0.0.1]", "'x10.0.0.1]' is not a valid host name"),
    ("a" * 64 + ".com", f"'{'a' * 64}.com' is not a valid host name"),
    (
        ("a" * 63 + ".") * 3 + "a" * 62,
        f"'{('a' * 63 + '.') * 3 + 'a' * 62}' is not a valid host name",
    ),
]


@pytest.mark.parametrize(("rule", "message"), EXACT_ERRORS)
def test_error_messages_in_full(rule: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rule(rule)
    assert str(caught.value) == message
