"""The grammar of network rules (pure): what a kit may write in allow/deny lists.

    **                 every host
    example.com        that host, any port
    example.com:8443   that host, one port (also :80-443 ranges and :* for any)
    *.example.com      one label below it (a.example.com, not example.com or a.b.example.com)
    **.example.com     any depth below it (not example.com itself)
    10.1.2.3, [fd00::1]:443, 10.0.0.0/8, fd00::/8      addresses and networks

A rule without a port matches every port (the sbx v3 reading). A bare ``*`` is refused:
it reads like "everything" but sbx rejects it, so a kit that uses it would not be portable.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


class RuleKind(enum.StrEnum):
    ANY = "any"
    EXACT = "exact"
    ONE_LABEL = "one-label"
    ANY_DEPTH = "any-depth"
    NETWORK = "network"


@dataclass(frozen=True)
class HostRule:
    """A parsed rule. ``host`` is the domain (or suffix) in lower case."""

    text: str
    kind: RuleKind
    host: str = ""
    network: IPNetwork | None = None
    ports: tuple[int, int] | None = None  # inclusive range; None = any port

    @property
    def names_host_explicitly(self) -> bool:
        """True for a rule that names one host or address, not a wildcard (SSRF guard)."""
        return self.kind in (RuleKind.EXACT, RuleKind.NETWORK)

    def matches(self, host: str, port: int) -> bool:
        if self.ports is not None and not self.ports[0] <= port <= self.ports[1]:
            return False
        host = host.lower().rstrip(".")
        if self.kind is RuleKind.ANY:
            return True
        if self.kind is RuleKind.NETWORK:
            try:
                address = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                return False
            assert self.network is not None
            return address.version == self.network.version and address in self.network
        if self.kind is RuleKind.EXACT:
            return host == self.host
        if not host.endswith("." + self.host):
            return False
        prefix = host[: -len(self.host) - 1]
        return self.kind is RuleKind.ANY_DEPTH or "." not in prefix


def parse_rule(text: str) -> HostRule:
    """Parse one rule; raises ValueError with a message meant for the kit's author."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty network rule")
    if raw == "*":
        raise ValueError("'*' is not a rule: write '**' to allow every host")
    if "://" in raw:
        raise ValueError(f"'{raw}' looks like a URL: write only the host, e.g. 'example.com'")
    host, ports = _split_port(raw)
    if host == "**":
        return HostRule(raw, RuleKind.ANY, ports=ports)
    network = _network(host)
    if network is not None:
        return HostRule(raw, RuleKind.NETWORK, host=str(network), network=network, ports=ports)
    if "/" in host:
        raise ValueError(f"'{raw}' is neither a host name nor an address range like 10.0.0.0/8")
    lowered = host.lower().rstrip(".")
    for prefix, kind in (("**.", RuleKind.ANY_DEPTH), ("*.", RuleKind.ONE_LABEL)):
        if lowered.startswith(prefix):
            suffix = lowered[len(prefix) :]
            _check_hostname(suffix, raw)
            return HostRule(raw, kind, host=suffix, ports=ports)
    _check_hostname(lowered, raw)
    return HostRule(raw, RuleKind.EXACT, host=lowered, ports=ports)


def _check_hostname(name: str, raw: str) -> None:
    if "*" in name:
        raise ValueError(
            f"'{raw}': a wildcard may only be the whole first label ('*.example.com' or '**.example.com')"
        )
    if len(name) > 253 or not _HOSTNAME.match(name):
        raise ValueError(f"'{raw}' is not a valid host name")


def _network(host: str) -> IPNetwork | None:
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_network(candidate, strict=False)
    except ValueError:
        return None


def _split_port(raw: str) -> tuple[str, tuple[int, int] | None]:
    """Split 'host:port'. A bare IPv6 address has colons of its own and no port."""
    if raw.startswith("["):
        close = raw.find("]")
        if close < 0:
            raise ValueError(f"'{raw}': missing ']' after the IPv6 address")
        rest = raw[close + 1 :]
        if not rest:
            return raw[: close + 1], None
        if not rest.startswith(":"):
            raise ValueError(f"'{raw}': expected ':PORT' after ']'")
        return raw[: close + 1], _parse_ports(rest[1:], raw)
    if raw.count(":") != 1:
        return raw, None  # no port, or a bare IPv6 address / network
    host, port = raw.split(":")
    return host, _parse_ports(port, raw)


def _parse_ports(text: str, raw: str) -> tuple[int, int] | None:
    if text == "*":
        return None
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high) if sep else int(low)
    except ValueError:
        raise ValueError(
            f"'{raw}': the port must be a number, a range like 80-443, or '*'"
        ) from None
    if not (1 <= first <= last <= 65535):
        raise ValueError(f"'{raw}': ports must be between 1 and 65535, low to high")
    return (first, last)
