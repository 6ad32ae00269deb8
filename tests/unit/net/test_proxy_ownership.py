"""The proxy owns its decision log and CA: `aclose` (or `async with`) closes them once,
`reconfigure` closes what only the old settings held, and `approve` changes what the
next request meets. Each test drives a real proxy on loopback; no origin is needed (a
refusal, or an allowed request to a closed port, shows the verdict)."""

from __future__ import annotations

import asyncio
import secrets
import socket
from pathlib import Path

from sandkit.errors import ProxyError
from sandkit.kits.model import NetworkRule, Origin
from sandkit.net.actions import Action, DefaultPolicy
from sandkit.net.decisions import DecisionLog, read_log
from sandkit.net.guard import Resolver
from sandkit.net.policy import Policy
from sandkit.net.proxy import EgressProxy, ProxySettings
from sandkit.net.tls import CertificateAuthority

ORIGIN = Origin(kit="test", file="test.yaml", line=1, column=1)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(home: Path, log: str, ca: CertificateAuthority | None = None) -> ProxySettings:
    return ProxySettings(
        policy=Policy(
            [NetworkRule(pattern="allowed.test", origin=ORIGIN)], [], DefaultPolicy.DENY_ALL
        ),
        ca=ca or CertificateAuthority.load_or_create(home / "ca"),
        log=DecisionLog(home / log),
        resolver=Resolver({"allowed.test": "127.0.0.1", "later.test": "127.0.0.1"}),
    )


async def get(port: int, url: str) -> str:
    """A plain-HTTP request through the proxy; the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.decode()


def leaf_works(ca: CertificateAuthority) -> bool:
    """Whether the CA can still make a leaf (for a host it has not cached one for)."""
    try:
        ca.server_context(f"{secrets.token_hex(4)}.allowed.test")
    except ProxyError:  # closed with its proxy
        return False
    return True


async def test_aclose_closes_the_log_and_the_ca_once(tmp_path: Path) -> None:
    s = settings(tmp_path, "decisions.jsonl")
    async with EgressProxy(s) as proxy:
        _, port = await proxy.start()
        assert (await get(port, "http://denied.test/")).startswith("HTTP/1.1 403 ")
    assert leaf_works(s.ca) is False
    records = read_log(tmp_path / "decisions.jsonl")
    assert [r.host for r in records] == ["denied.test"]
    s.log.record(records[0])  # closed: nothing more is written
    await proxy.aclose()  # a second close is harmless
    assert len(read_log(tmp_path / "decisions.jsonl")) == 1


async def test_reconfigure_closes_only_what_the_old_settings_alone_held(tmp_path: Path) -> None:
    old = settings(tmp_path, "old.jsonl")
    new = settings(tmp_path, "new.jsonl", ca=old.ca)  # the same CA, a new log
    proxy = EgressProxy(old)
    _, port = await proxy.start()
    try:
        proxy.reconfigure(new)
        assert leaf_works(new.ca), "the CA both settings share stays open"
        await get(port, "http://denied.test/")
        new.log.flush()  # written in batches
        assert [r.host for r in read_log(tmp_path / "new.jsonl")] == ["denied.test"]
        assert read_log(tmp_path / "old.jsonl") == []
        proxy.reconfigure(settings(tmp_path, "third.jsonl"))  # a CA of its own
        assert leaf_works(new.ca) is False
    finally:
        await proxy.aclose()


async def test_an_approval_reaches_the_next_request(tmp_path: Path) -> None:
    port_nobody_serves = closed_port()
    url = f"http://later.test:{port_nobody_serves}/"
    async with EgressProxy(settings(tmp_path, "decisions.jsonl")) as proxy:
        _, port = await proxy.start()
        refused = await get(port, url)
        assert refused.startswith("HTTP/1.1 403 ") and "X-Sandkit-Blocked: default-deny" in refused
        proxy.approve(f"later.test:{port_nobody_serves}", Action.ALLOW)
        # Allowed now: the proxy tries the origin, which is not there, and says so in words.
        unreachable = await get(port, url)
    assert unreachable.startswith("HTTP/1.1 502 "), unreachable
    assert f"sandkit proxy: cannot reach later.test:{port_nobody_serves}" in unreachable
    assert "the network policy allowed this request" in unreachable.lower()
