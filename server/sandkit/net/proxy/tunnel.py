"""CONNECT: a plain tunnel of bytes to a host the policy allows, or, for a host with a
credential or method/path rules, TLS terminated with a leaf of the sandbox CA so that each
request inside is decided and forwarded on its own (``forward``)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from sandkit.net import answers
from sandkit.net.actions import Action
from sandkit.net.decisions import Decision
from sandkit.net.guard import IPAddress
from sandkit.net.httpio import BadMessage, Head, MessageReader
from sandkit.net.policy import Verdict
from sandkit.net.proxy import decide, oauth
from sandkit.net.proxy.settings import CONNECT_TIMEOUT, COPY_SIZE
from sandkit.net.proxy.upstream import splice

if TYPE_CHECKING:
    from sandkit.net.proxy.server import EgressProxy

ESTABLISHED = b"HTTP/1.1 200 Connection Established\r\n\r\n"


async def connect(
    proxy: EgressProxy,
    head: Head,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    messages: MessageReader,
) -> None:
    started = time.monotonic()
    host, port = authority(head.target, 443)
    decision = Decision(proxy.s.sandbox, "CONNECT", "tunnel", host, port, "blocked", "")
    try:
        verdict, resolved = await decide.decide(proxy, host, port, client=reader)
        decide.note(decision, verdict)
        if verdict.action is not Action.ALLOW:
            raise decide.blocked(proxy.s, host, port, verdict)
        decision.reason = str(verdict.reason)
        intercept = proxy.s.injector.intercepts(host) or oauth.intercepts(proxy.s.oauth, host)
        if intercept or verdict.inspect:
            if messages.leftover:
                raise BadMessage(400, "data sent before the tunnel was established")
            decision.action, decision.scheme = "allowed", "https"
            proxy.s.log.record(decision)  # each request inside gets its own decision
            await _intercept(proxy, host, port, reader, writer)
            return
        await _tunnel(proxy, host, port, (verdict, resolved), reader, writer, messages, decision)
    except decide.Blocked as blocked:
        decision.reason, decision.status = blocked.code, 403
        await answers.forbidden(writer, blocked.code, blocked.body, tunnel=True)
    finally:
        if decision.scheme == "tunnel":
            decision.latency_ms = round((time.monotonic() - started) * 1000, 2)
            proxy.s.log.record(decision)


async def _tunnel(
    proxy: EgressProxy,
    host: str,
    port: int,
    decided: tuple[Verdict, IPAddress | None],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    messages: MessageReader,
    decision: Decision,
) -> None:
    address = await decide.address(proxy.s, host, port, *decided)
    try:
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(str(address), port, limit=COPY_SIZE), CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        decision.status = 502
        await answers.error(writer, 502, f"cannot connect to {host}:{port}: {exc}")
        return
    writer.write(ESTABLISHED)
    decision.action, decision.status = "allowed", 200
    if messages.leftover:
        up_writer.write(messages.leftover)
    decision.bytes_up, decision.bytes_down = await splice(reader, writer, up_reader, up_writer)
    decision.bytes_up += len(messages.leftover)


async def _intercept(
    proxy: EgressProxy,
    host: str,
    port: int,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    writer.write(ESTABLISHED)
    await writer.drain()
    await writer.start_tls(proxy.s.ca.server_context(host))
    await proxy.requests(reader, writer, MessageReader(reader, "request"), origin=(host, port))


def authority(target: str, default_port: int) -> tuple[str, int]:
    """HOST and PORT of a CONNECT target."""
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port:
        host, port = target, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadMessage(400, f"bad CONNECT target '{target}': expected HOST:PORT")
    return host.lower(), int(port)
