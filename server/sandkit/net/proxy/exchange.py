"""One request sent to its origin and the response relayed back: hop-by-hop headers
dropped, 1xx passed through, bodies streamed with their framing, upgrades spliced, and
in a terminated tunnel the response scrubbed of real secrets as it streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandkit.net import answers
from sandkit.net.decisions import Decision
from sandkit.net.httpio import (
    BadMessage,
    Head,
    Headers,
    MessageReader,
    encode_head,
    end_to_end,
    send_body,
)
from sandkit.net.proxy.upstream import Upstream, splice
from sandkit.net.scrub import BodyScrubber, Decoder, Scrubber, UnsupportedEncoding

if TYPE_CHECKING:
    from sandkit.net.proxy.forward import Request

# Request headers that would keep the response scrubber from seeing a whole, plain body.
_UNSCRUBBABLE_REQUEST = frozenset({"accept-encoding", "range", "if-range"})
_UPGRADE = frozenset({"upgrade", "connection"})


@dataclass
class _Reply:
    """How a response goes back to the client."""

    head: bytes
    no_body: bool
    chunked: bool
    scrub: tuple[Decoder, BodyScrubber] | None  # the body's decoder and scrubber


async def exchange(
    head: Head,
    request: Request,
    writer: asyncio.StreamWriter,
    messages: MessageReader,
    upstream: Upstream,
    decision: Decision,
    scrubber: Scrubber | None = None,
) -> bool:
    """Send the request upstream and relay its response; True if the client's
    connection may carry another request."""
    upgrade = head.upgrade and head.method != "CONNECT"
    keep_names = _UPGRADE if upgrade else frozenset()
    await _send_request(head, request, messages, upstream, decision, scrubber, keep_names)
    response = await _response(upstream, writer)
    decision.status = response.status
    client_keep = head.keep_alive and not upgrade
    reply = _reply(head, response, keep_names, client_keep, scrubber, request.host, decision)
    if response.status == 101:
        writer.write(reply.head)
        await writer.drain()
        if upstream.messages.leftover:
            writer.write(upstream.messages.leftover)
        up, down = await splice(messages.stream, writer, upstream.reader, upstream.writer)
        decision.bytes_up += up + len(messages.leftover)
        decision.bytes_down += down
        return False
    await _relay_body(reply, upstream, writer, request.host, decision)
    if not (response.keep_alive and response.framing != "none"):
        upstream.closed = True
    return client_keep


async def _send_request(
    head: Head,
    request: Request,
    messages: MessageReader,
    upstream: Upstream,
    decision: Decision,
    scrubber: Scrubber | None,
    keep_names: frozenset[str],
) -> None:
    out = end_to_end(request.headers, keep_names)
    if scrubber is not None:
        # The scrubber must see whole, plain bodies: a compressed body hides a
        # reflected secret, and byte ranges would let it out a few bytes at a time.
        out = [(k, v) for k, v in out if k.lower() not in _UNSCRUBBABLE_REQUEST]
        out.append(("Accept-Encoding", "identity"))
    if not any(k.lower() == "host" for k, _ in out):
        host, port = request.host, request.port
        name = f"[{host}]" if ":" in host else host
        out.insert(0, ("Host", name if port in (80, 443) else f"{name}:{port}"))
    framing = head.framing
    if framing == "chunked":
        out.append(("Transfer-Encoding", "chunked"))
    upstream.writer.write(encode_head(f"{head.method} {request.path} HTTP/1.1", out))
    if framing != "none":
        decision.bytes_up = await send_body(messages.body(), upstream.writer, framing == "chunked")
    else:
        async for _ in messages.body():
            pass  # consume the end of message
        await upstream.writer.drain()


async def _response(upstream: Upstream, writer: asyncio.StreamWriter) -> Head:
    """The response's head, after passing any interim (1xx) responses to the client."""
    while True:
        try:
            # No time limit: a model's first byte can take minutes; the client decides.
            response = await upstream.messages.head()
        except BadMessage as exc:
            raise ConnectionError(f"the origin sent bad HTTP ({exc.reason})") from None
        if response is None:
            raise ConnectionError("upstream closed without a response")
        if not (100 <= response.status < 200 and response.status != 101):
            return response
        writer.write(encode_head(f"HTTP/1.1 {response.status} Continue", []))
        async for _ in upstream.messages.body():
            pass


def _reply(
    head: Head,
    response: Head,
    keep_names: frozenset[str],
    client_keep: bool,
    scrubber: Scrubber | None,
    host: str,
    decision: Decision,
) -> _Reply:
    status = response.status
    no_body = head.method == "HEAD" or status in (204, 304) or status < 200
    back = end_to_end(response.headers, keep_names if status == 101 else frozenset())
    chunked = not no_body and response.framing != "length"
    phrase = response.reason or answers.phrase(status)
    scrub: tuple[Decoder, BodyScrubber] | None = None
    if scrubber is not None:
        back, phrase = _scrub_head(scrubber, back, phrase, host, decision)
        if not no_body and status != 101:
            encoding = ", ".join(v for k, v in back if k.lower() == "content-encoding")
            decoder = Decoder(encoding)  # refuses what it cannot read, before any byte
            dropped = {"content-length", "content-encoding"} if decoder.active else set()
            # Scrubbing may change the length: the body goes back chunked.
            back = [(k, v) for k, v in back if k.lower() not in dropped | {"content-length"}]
            scrub, chunked = (decoder, scrubber.stream()), True
    if chunked:
        back.append(("Transfer-Encoding", "chunked"))
    if not client_keep:
        back.append(("Connection", "close"))
    return _Reply(encode_head(f"HTTP/1.1 {status} {phrase}", back), no_body, chunked, scrub)


async def _relay_body(
    reply: _Reply,
    upstream: Upstream,
    writer: asyncio.StreamWriter,
    host: str,
    decision: Decision,
) -> None:
    if reply.no_body:
        upstream.messages.skip_body()
        writer.write(reply.head)
        await writer.drain()
    elif reply.scrub is not None:
        decoder, scrub = reply.scrub
        try:
            decision.bytes_down = await send_body(
                _scrubbed(upstream.messages.body(), decoder, scrub, writer, decision),
                writer,
                True,
                reply.head,
            )
        finally:
            decision.warnings.extend(
                f"the response from {host} carried the real secret of '{service}' in "
                "its body; replaced by its placeholder"
                for service in sorted(scrub.found)
            )
    else:
        body = upstream.messages.body()
        decision.bytes_down = await send_body(body, writer, reply.chunked, reply.head)


def _scrub_head(
    scrubber: Scrubber, headers: Headers, phrase: str, host: str, decision: Decision
) -> tuple[Headers, str]:
    headers, hits = scrubber.headers(headers)
    phrase, found = scrubber.text(phrase)
    hits += [("status line", service) for service in sorted(found)]
    decision.warnings.extend(
        f"the response from {host} carried the real secret of '{service}' in "
        f"{'the' if where == 'status line' else 'header'} {where}; replaced by its "
        "placeholder"
        for where, service in hits
    )
    return headers, phrase


async def _scrubbed(
    source: AsyncIterator[bytes],
    decoder: Decoder,
    scrub: BodyScrubber,
    writer: asyncio.StreamWriter,
    decision: Decision,
) -> AsyncIterator[bytes]:
    """A response body decoded and scrubbed as it streams."""
    try:
        async for piece in source:
            for plain in decoder.feed(piece):
                yield scrub.feed(plain)
        yield scrub.feed(decoder.flush()) + scrub.flush()
    except UnsupportedEncoding as exc:
        decision.warnings.append(str(exc))
        writer.transport.abort()  # part of the answer may be out: no honest way to end it
        raise ConnectionError(str(exc)) from None
