"""The proxy's own answers (403, 407, 4xx, 502): a status line and a plain-text body for
whoever reads it, the agent in the VM or a person at curl, saying what happened and what
to do next. The policy's refusals (guard.blocked_body), token access's 407 (access.py)
and the proxy's errors all go out through ``send``."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence

from sandkit.net.httpio import encode_head

_PHRASES = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    407: "Proxy Authentication Required",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def phrase(status: int) -> str:
    return _PHRASES.get(status, "Status")


def error_body(status: int, reason: str) -> str:
    """The body of an error the proxy answers itself: what went wrong, then what to do."""
    if status == 502:
        hint = (
            "The network policy allowed this request, but the proxy could not complete it "
            "with the host. Try again later; do not try another route."
        )
    elif status >= 500:
        hint = "The proxy failed on this request; try again."
    else:
        hint = "Nothing was sent to any host: correct the request and send it again."
    return f"sandkit proxy: {reason}\n{hint}\n"


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")  # a reason phrase is visible ASCII and spaces
MAX_PHRASE = 400


def refusal_phrase(status: int, body: str) -> str:
    """A refused CONNECT's reason phrase: the body's explanation on one line. Clients
    show a failed CONNECT's status line, not its body (Go's, so dockerd's, shows the
    phrase alone), so the phrase carries the why."""
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    words = " ".join(lines[:3])  # what was blocked, why, how to allow it
    words = _UNPRINTABLE.sub("?", words)[:MAX_PHRASE]
    return f"{phrase(status)} ({words})" if words else phrase(status)


def message(
    status: int, body: str, headers: Sequence[tuple[str, str]] = (), reason: str | None = None
) -> bytes:
    """A whole response that ends its connection: ``headers`` first, then the body's.
    ``reason``: the status line's phrase, when not the standard one."""
    data = body.encode()
    return (
        encode_head(
            f"HTTP/1.1 {status} {reason or phrase(status)}",
            [
                *headers,
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(data))),
                ("Connection", "close"),
            ],
        )
        + data
    )


async def send(
    writer: asyncio.StreamWriter,
    status: int,
    body: str,
    headers: Sequence[tuple[str, str]] = (),
    reason: str | None = None,
) -> None:
    if writer.is_closing():
        return
    writer.write(message(status, body, headers, reason))
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def forbidden(
    writer: asyncio.StreamWriter, code: str, body: str, *, tunnel: bool = False
) -> None:
    """The policy's 403; ``code`` (X-Sandkit-Blocked) says why to a program. A refused
    ``tunnel`` (CONNECT) says it in the status line too (`refusal_phrase`)."""
    reason = refusal_phrase(403, body) if tunnel else None
    await send(writer, 403, body, [("X-Sandkit-Blocked", code)], reason)


async def error(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    await send(writer, status, error_body(status, reason))
