"""Where a name may lead (SSRF and DNS-rebinding guard) and how blocked requests are
explained to the agent that made them."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping

from sandkit.net.actions import DefaultPolicy
from sandkit.net.policy import Reason, Verdict

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_internal(address: IPAddress) -> bool:
    """Loopback, link-local (metadata), private, shared, unique-local, reserved…: anything
    that is not a public internet address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


class Resolver:
    """DNS lookups, with pinned names (``--resolve HOST=IP``) taking precedence."""

    def __init__(self, pins: Mapping[str, str] | None = None) -> None:
        self.pins = {h.lower(): ipaddress.ip_address(ip) for h, ip in (pins or {}).items()}

    def pinned(self, host: str) -> bool:
        return host.lower() in self.pins

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        host = host.lower().strip("[]")
        if host in self.pins:
            return [self.pins[host]]
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def blocked_body(
    host: str, port: int, verdict: Verdict | None, default: DefaultPolicy, detail: str | None = None
) -> str:
    """The 403 body: what was blocked, why, and what a person can do about it."""
    target = f"{host}:{port}"
    lines = [f"Blocked by sandkit network policy: {target}"]
    rule = verdict.rule if verdict else None
    if verdict is not None and verdict.reason is Reason.BAD_TARGET and rule is not None:
        lines.append(f"Reason: {verdict.detail or 'the request path cannot be normalised'}")
        lines.append(
            f"The rule '{rule.pattern}' in kit {rule.origin.kit} ({rule.origin.file}:"
            f"{rule.origin.line}) allows or denies paths on this host, and this path could "
            "mean different things to different servers, so it is refused."
        )
        lines.append(
            "To get through: send the plain path (no '..', no encoded '/' or NUL, valid "
            "%XX escapes)."
        )
    elif detail is not None:
        lines.append(f"Reason: {detail}")
        lines.append(
            f"To allow it: name the host exactly ('{host}') in permissions.network.allow "
            "of a kit; wildcard rules and the default policy never reach private addresses."
        )
    elif verdict is not None and verdict.reason is Reason.DENY_RULE and rule is not None:
        lines.append(
            f"Rule: deny '{rule.pattern}' in kit {rule.origin.kit} "
            f"({rule.origin.file}:{rule.origin.line})"
        )
        lines.append(
            "To allow it: a person must remove that deny rule; deny rules win over allow rules."
        )
    elif verdict is not None and verdict.reason is Reason.REFUSED:
        lines.append("Reason: a person refused this host for this sandbox.")
    else:
        lines.append(f"Reason: no rule allows this host and the default policy is '{default}'.")
        lines.append(
            f"To allow it: a person can add '{host}' to permissions.network.allow in a kit, "
            "or approve the request when sandkit asks."
        )
    lines.append("Do not retry through another route; tell the user which host you need and why.")
    return "\n".join(lines) + "\n"


def mismatch_body(tunnel: str, named: str, where: str) -> str:
    """The 403 body for a request that names another host than its TLS tunnel's."""
    return (
        f"Blocked by sandkit: host mismatch.\n"
        f"This connection is a tunnel to {tunnel} (CONNECT {tunnel}), but the request names "
        f"{named} in its {where}.\n"
        f"A request may only go to the host its tunnel was opened for, so that credentials "
        f"for {tunnel} never reach another host.\n"
        f"To reach {named}, make a separate request to https://{named}/ through the proxy "
        f"(a new CONNECT); do not set the Host header or the URL to another host.\n"
    )
