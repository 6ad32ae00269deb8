"""Publish specs and the guest's listeners, from /proc/net/tcp text."""

from __future__ import annotations

import pytest

from sandkit.sandbox.ports import PortError, Published, check_new, listeners, parse


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("8000", Published(8000, 0)),
        ("18000:8000", Published(8000, 18000)),
        ("18000:8000/tcp", Published(8000, 18000)),
        ("10.1.2.3:18000:8000", Published(8000, 18000, "10.1.2.3")),
        ("0.0.0.0:80:8080", Published(8080, 80, "0.0.0.0")),
        ("127.0.0.1:0:22", Published(22, 0)),
        (" 65535:1 ", Published(1, 65535)),
    ],
)
def test_parse(spec: str, want: Published) -> None:
    assert parse(spec) == want


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "not a port to publish"),
        ("x", "not a port to publish"),
        ("0", "not a port number"),
        ("65536", "not a port number"),
        ("70000:80", "not a port number"),
        ("80/udp", "only tcp"),
        ("1.2.3:80:80", "not an IP address"),
        ("[::1]:80:80", "IPv4 host addresses only"),
        ("a:b:c:80", "not a port to publish"),
    ],
)
def test_parse_refuses_with_the_fix(spec: str, message: str) -> None:
    with pytest.raises(PortError, match=message) as info:
        parse(spec)
    assert "GUEST_PORT" in str(info.value) or "tcp" in str(info.value) or "IPv4" in str(info.value)


def test_round_trip_through_a_dict() -> None:
    port = Published(8000, 18000, "10.0.0.1")
    assert Published.from_dict(port.as_dict()) == port
    assert str(port) == "10.0.0.1:18000->8000/tcp"
    assert str(Published(8000, 0)) == "127.0.0.1:?->8000/tcp"


def test_check_new_refuses_a_taken_host_port_or_guest_port() -> None:
    current = [Published(8000, 18000)]
    with pytest.raises(PortError, match=r"host port 127\.0\.0\.1:18000"):
        check_new(current, Published(9000, 18000))
    with pytest.raises(PortError, match="guest port 8000 is already published"):
        check_new(current, Published(8000, 18001))
    check_new(current, Published(9000, 18001))
    check_new(current, Published(9000, 0))  # a host port still to be chosen clashes with none
    check_new(current, Published(8000, 18000, "10.0.0.1"))  # another host address


TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1
   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2
   2: 0F02000A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3
   3: 0100007F:1F41 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4
   4: garbage
"""
TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000001000000:0BB9 00000000000000000000000000000000:0000 0A
   2: 0000000000000000FFFF00000F02000A:0BBA 00000000000000000000000000000000:0000 0A
"""


def test_listeners_on_wildcard_or_loopback_only() -> None:
    # 8000 any, 22 loopback; 80 on 10.0.2.15 only and 8001 (established) are not offered.
    assert listeners(TCP) == {8000, 22}
    assert listeners(TCP, TCP6) == {8000, 22, 3000, 3001}
    assert listeners("") == set()
