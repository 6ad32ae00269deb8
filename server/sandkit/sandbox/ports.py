"""Published ports: what ``--publish`` means, and which guest ports are listening.

A published port is a host address (127.0.0.1 unless the user names another) forwarded
by QEMU's user network to a port in the guest; the guest still opens no connection of its
own (``restrict=on`` stays). Pure: parsing and comparing only."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
_SPEC = re.compile(
    r"""(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)??   # HOST_IP: (IPv6 in brackets)
        (?:(?P<host>\d+):)?                          # HOST_PORT:
        (?P<guest>\d+)
        (?:/(?P<proto>[a-z0-9]+))?$""",
    re.VERBOSE,
)
HELP = (
    "write [HOST_IP:][HOST_PORT:]GUEST_PORT[/tcp], e.g. 8000, 18000:8000 or "
    "127.0.0.1:18000:8000 (without HOST_PORT a free host port is chosen)"
)


class PortError(ValueError):
    """A publish request that cannot be honoured; the message says how to write it."""


@dataclass(frozen=True, order=True)
class Published:
    guest: int
    host: int  # 0: not chosen yet (the supervisor picks a free port)
    host_ip: str = LOOPBACK
    proto: str = "tcp"

    def __str__(self) -> str:
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        return f"{ip}:{self.host or '?'}->{self.guest}/{self.proto}"

    def with_host(self, host: int) -> Published:
        return Published(self.guest, host, self.host_ip, self.proto)

    def as_dict(self) -> dict[str, object]:
        return {
            "guest": self.guest,
            "host": self.host,
            "host_ip": self.host_ip,
            "proto": self.proto,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Published:
        return cls(int(str(data["guest"])), int(str(data["host"])), str(data["host_ip"]))


def _port(text: str, what: str, spec: str, allow_zero: bool = False) -> int:
    value = int(text)
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise PortError(f"'{spec}': {what} {value} is not a port number (1-65535); {HELP}")
    return value


def parse(spec: str) -> Published:
    """``--publish`` / a kit's port entry → Published; a PortError names the fix."""
    match = _SPEC.fullmatch(spec.strip())
    if match is None:
        raise PortError(f"'{spec}' is not a port to publish: {HELP}")
    proto = match["proto"] or "tcp"
    if proto not in ("tcp", "tcp4"):
        raise PortError(
            f"'{spec}': only tcp ports can be published (QEMU's user network forwards tcp "
            "to the guest; udp is not offered)"
        )
    guest = _port(match["guest"], "guest port", spec)
    host = _port(match["host"], "host port", spec, allow_zero=True) if match["host"] else 0
    ip = (match["ip"] or LOOPBACK).strip("[]")
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise PortError(f"'{spec}': '{ip}' is not an IP address; {HELP}") from None
    if address.version == 6:
        raise PortError(
            f"'{spec}': QEMU's user network forwards from IPv4 host addresses only; "
            "use 127.0.0.1 (the default) or another IPv4 address of this machine"
        )
    return Published(guest=guest, host=host, host_ip=str(address), proto="tcp")


def check_new(current: list[Published], wanted: Published) -> None:
    """Refuse a second forward of one host address or guest port (the first would be
    silently shadowed)."""
    for port in current:
        if wanted.host and (port.host, port.host_ip) == (wanted.host, wanted.host_ip):
            raise PortError(
                f"host port {wanted.host_ip}:{wanted.host} is already published ({port})"
            )
        if port.guest == wanted.guest and port.host_ip == wanted.host_ip:
            raise PortError(
                f"guest port {wanted.guest} is already published ({port}); "
                f"unpublish it first: sandkit ports NAME --unpublish {port.guest}"
            )


def find(current: list[Published], spec: str) -> Published:
    """What ``--unpublish GUEST_PORT`` or ``HOST_PORT:GUEST_PORT`` names."""
    host, _, guest = spec.strip().rpartition(":")
    guest = guest.removesuffix("/tcp")
    for port in current:
        if str(port.guest) == guest and (not host or str(port.host) == host):
            return port
    shown = ", ".join(str(x) for x in current) or "none"
    raise PortError(f"'{spec}' is not published (published: {shown})")


def saved(entries: list[dict[str, object]]) -> list[Published]:
    """config.json's ``ports`` (written by Published.as_dict); a damaged entry is skipped."""
    ports = []
    for entry in entries:
        try:
            ports.append(Published.from_dict(entry))
        except (KeyError, ValueError, TypeError):
            continue
    return ports


# /proc/net/tcp's state column: 0A is LISTEN.
_LISTEN = "0A"


def listeners(proc_net_tcp: str, proc_net_tcp6: str = "") -> set[int]:
    """The guest's listening tcp ports on any address a forward can reach (the wildcard
    or loopback address; a service bound to another address is not published)."""
    ports: set[int] = set()
    for text, width in ((proc_net_tcp, 8), (proc_net_tcp6, 32)):
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != _LISTEN or ":" not in fields[1]:
                continue
            address, _, port = fields[1].partition(":")
            if len(address) != width or address not in _REACHABLE[width]:
                continue
            try:
                ports.add(int(port, 16))
            except ValueError:
                continue
    return ports


# As /proc prints them: each 32-bit word in host (little-endian) byte order.
_REACHABLE = {
    8: {"00000000", "0100007F"},
    32: {"0" * 32, "00000000000000000000000001000000"},
}
