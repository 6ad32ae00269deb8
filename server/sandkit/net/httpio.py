"""HTTP/1.1 messages on asyncio streams, parsed by llhttp (httptools).

Pull-based: the proxy asks for the next head or body chunk and only then is more read
from the socket, so a slow reader on one side slows the writer on the other
(back-pressure) instead of buffering without bound."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

import httptools

MAX_HEAD = 64 * 1024
MAX_HEADERS = 200
READ_SIZE = 64 * 1024

Headers = list[tuple[str, str]]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class BadMessage(Exception):
    """The peer sent something that is not HTTP/1.1; ``status`` is the answer to give."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Head:
    method: str  # request method ("" for responses)
    target: str  # request target ("" for responses)
    status: int  # response status (0 for requests)
    version: str
    headers: Headers
    keep_alive: bool
    upgrade: bool
    reason: str = ""  # response reason phrase

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def framing(self) -> Literal["length", "chunked", "none"]:
        if any(
            k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in self.headers
        ):
            return "chunked"
        return "length" if self.get("content-length") is not None else "none"


_Event = tuple[str, object]


class MessageReader:
    """Reads successive HTTP messages (requests or responses) from one stream."""

    def __init__(self, stream: asyncio.StreamReader, kind: Literal["request", "response"]) -> None:
        self.stream = stream
        self.kind = kind
        self._parser = self._new_parser()
        self._events: collections.deque[_Event] = collections.deque()
        self._eof = False
        self._head_bytes = 0
        self._in_head = False
        self._in_body = False
        self._url = b""
        self._headers: Headers = []
        self.leftover = b""  # bytes after an upgrade (CONNECT, websocket): raw from here on
        self.upgraded = False

    def _new_parser(self) -> httptools.HttpRequestParser | httptools.HttpResponseParser:
        if self.kind == "request":
            return httptools.HttpRequestParser(self)
        return httptools.HttpResponseParser(self)

    # -- llhttp callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url, self._headers, self._in_head = b"", [], True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_status(self, status: bytes) -> None:
        self._url += status  # responses have no URL: the reason phrase takes its place

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) >= MAX_HEADERS:
            raise BadMessage(431, f"more than {MAX_HEADERS} header fields")
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        p = self._parser
        is_request = isinstance(p, httptools.HttpRequestParser)
        head = Head(
            method=p.get_method().decode("ascii") if is_request else "",  # type: ignore[union-attr]
            target=self._url.decode("latin-1") if is_request else "",
            status=0 if is_request else p.get_status_code(),  # type: ignore[union-attr]
            version=p.get_http_version(),
            headers=self._headers,
            keep_alive=p.should_keep_alive(),
            upgrade=p.should_upgrade(),
            reason="" if is_request else self._url.decode("latin-1"),
        )
        self._in_head, self._in_body = False, True
        self._events.append(("head", head))

    def on_body(self, body: bytes) -> None:
        self._events.append(("body", bytes(body)))

    def on_message_complete(self) -> None:
        self._in_body = False
        self._events.append(("end", None))

    # -- pulling ------------------------------------------------------------------------
    async def _next(self) -> _Event | None:
        while not self._events:
            if self._eof or self.upgraded:
                return None
            data = await self.stream.read(READ_SIZE)
            if not data:
                self._eof = True
                if self._in_body and self.kind == "response":
                    self._in_body = False  # a body delimited by the connection closing
                    return ("end", None)
                if self._in_head or self._in_body:
                    raise BadMessage(400, "connection closed in the middle of a message")
                return None
            if self._in_head or not self._in_body:
                self._head_bytes += len(data)
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
                self.leftover, self.upgraded = data[offset:], True
                self._in_body = False
                self._events.append(("end", None))
            except httptools.HttpParserError as exc:
                if isinstance(exc.__context__, BadMessage):  # raised in one of our callbacks
                    raise exc.__context__ from None
                raise BadMessage(400, f"malformed HTTP: {exc}") from None
            if self._in_head and self._head_bytes > MAX_HEAD:
                raise BadMessage(431, f"request head larger than {MAX_HEAD // 1024} KiB")
            if not self._in_head and not self._in_body:
                self._head_bytes = 0
        return self._events.popleft()

    async def head(self) -> Head | None:
        """The next message's head; None when the peer closed cleanly between messages."""
        event = await self._next()
        if event is None:
            return None
        kind, value = event
        if kind != "head" or not isinstance(value, Head):
            raise BadMessage(400, "unexpected data before a message head")
        return value

    async def body(self) -> AsyncIterator[bytes]:
        """The current message's body, de-chunked, until the message ends."""
        while True:
            event = await self._next()
            if event is None or event[0] == "end":
                return
            if event[0] == "body" and isinstance(event[1], bytes):
                yield event[1]

    def skip_body(self) -> None:
        """The message that was just read has no body whatever its headers say (a
        response to HEAD): start afresh for the next message."""
        if self._events and self._events[0][0] == "end":
            self._events.popleft()
        self._parser = self._new_parser()
        self._in_body = False


def encode_head(start: str, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [start, *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def end_to_end(headers: Sequence[tuple[str, str]], keep: frozenset[str] = frozenset()) -> Headers:
    """Drop hop-by-hop headers, and any the Connection header names (RFC 9110 §7.6.1)."""
    named = {
        t.strip().lower() for k, v in headers if k.lower() == "connection" for t in v.split(",")
    }
    drop = (HOP_BY_HOP | named) - keep
    return [(k, v) for k, v in headers if k.lower() not in drop]


async def send_body(
    source: AsyncIterator[bytes], writer: asyncio.StreamWriter, chunked: bool, head: bytes = b""
) -> int:
    """Write ``head``, then copy a body, chunk-encoded or as is; returns the payload bytes.
    The head goes out with the first piece: one send for a small message, not two."""
    sent = 0
    async for piece in source:
        if not piece:
            continue
        sent += len(piece)
        writer.write(head + (b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece))
        head = b""
        await writer.drain()
    writer.write(head + b"0\r\n\r\n" if chunked else head)
    await writer.drain()
    return sent
