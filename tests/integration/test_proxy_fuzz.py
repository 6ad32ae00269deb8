"""Malformed traffic at the proxy: every answer is an HTTP error or a closed connection,
the proxy keeps serving, logs no crash, and never hands out a credential."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import pytest

from tests.integration.conftest import OTHER_SECRET, REAL_SECRET, Origins, RunningProxy

CRAFTED = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET http://allowed.test/ a b HTTP/1.1\r\n\r\n",
    b"\x00\x01\x02\x03\xff\xfe" * 50,
    b"GET http://allowed.test/ HTTP/1.1\r\nX: " + b"a" * (200 * 1024) + b"\r\n\r\n",
    b"GET http://allowed.test/ HTTP/1.1\r\n" + b"X-H: v\r\n" * 5000 + b"\r\n",
    b"POST http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
    b"POST http://allowed.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
    b"POST http://allowed.test/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST http://allowed.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST http://allowed.test/ HTTP/1.1\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n",
    b"CONNECT :99999 HTTP/1.1\r\n\r\n",
    b"CONNECT api.test HTTP/1.1\r\n\r\n",
    b"CONNECT [::1 HTTP/1.1\r\n\r\n",
    b"GET /relative HTTP/1.1\r\nHost: api.test\r\n\r\n",
    b"GET ftp://allowed.test/ HTTP/1.1\r\n\r\n",
    b"GET http:/// HTTP/1.1\r\n\r\n",
    b"GET http://allowed.test/ HTTP/9.9\r\n\r\n",
    b"GET http://allowed.test/ HTTP/1.1\r\nHost: a\r\n",  # head never ends (half-close)
    b"GET http://allowed.test/ HTTP/1.1\n\n",
    b"GET http://api.test/ HTTP/1.1\r\nAuthorization: Bearer sandkit-placeholder-api-0001\r\n\r\n",
    b"",
]


def valid(origins: Origins) -> list[bytes]:
    port = origins.http_port
    return [
        f"GET http://allowed.test:{port}/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n".encode(),
        f"POST http://allowed.test:{port}/upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\n".encode(),
        f"POST http://api.test:{port}/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".encode(),
        f"CONNECT api.test:{origins.https_port} HTTP/1.1\r\n\r\n".encode(),
    ]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        pos = rng.randrange(len(out) + 1)
        if op < 0.3 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif op < 0.55:
            out[pos:pos] = rng.choice([b"\r\n", b":", b" ", b"\x00", b"0" * 20, b"-1", b"\r\n\r\n"])
        elif op < 0.8:
            del out[pos : pos + rng.randint(1, 8)]
        else:
            out = out[:pos]
    return bytes(out)


# Not a speed limit: how long a connection the client has finished with may stay silent
# and open before the proxy counts as hung.
HUNG = 60.0


async def exchange(port: int, payload: bytes, half_close: bool) -> bytes:
    """Everything the proxy sends back until it closes the connection. The client says it
    has finished (a half-close) at once, or, for ``half_close`` False, after a pause in
    which an incomplete message may keep the proxy waiting; once the client has finished,
    the proxy must answer or close: a connection it keeps open for ever fails the test."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(payload)
        await writer.drain()
        if not half_close:
            with contextlib.suppress(TimeoutError):  # the proxy may answer, or wait for more
                received = await asyncio.wait_for(reader.read(1 << 20), 1.0)
        if not reader.at_eof():
            writer.write_eof()
        try:
            async with asyncio.timeout(HUNG):
                while chunk := await reader.read(1 << 20):
                    received += chunk
        except TimeoutError:
            pytest.fail(f"the proxy neither answered nor closed: {payload[:120]!r}")
        return received
    except ConnectionError:
        return received
    finally:
        writer.transport.abort()


@pytest.mark.timeout(300)
async def test_malformed_requests(
    proxy: RunningProxy, origins: Origins, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(20261127)
    seeds = valid(origins)
    cases = [(c, bool(i % 2)) for i, c in enumerate(CRAFTED)]
    cases += [(mutate(rng, rng.choice(seeds)), rng.random() < 0.5) for _ in range(300)]
    with caplog.at_level(logging.ERROR, logger="sandkit"):
        for batch in range(0, len(cases), 25):
            answers = await asyncio.gather(
                *(
                    exchange(proxy.port, payload, half)
                    for payload, half in cases[batch : batch + 25]
                )
            )
            for (payload, _), answer in zip(cases[batch : batch + 25], answers, strict=True):
                assert REAL_SECRET.encode() not in answer and OTHER_SECRET.encode() not in answer
                if answer and not payload.startswith(b"CONNECT"):
                    assert answer.startswith(b"HTTP/1.1 "), (payload[:120], answer[:120])
    crashes = [
        r for r in caplog.records if r.name.startswith("sandkit") and r.levelno >= logging.ERROR
    ]
    assert not crashes, caplog.text
    # still alive and correct
    answer = await exchange(proxy.port, seeds[0], half_close=True)
    assert answer.startswith(b"HTTP/1.1 200")
    assert REAL_SECRET not in proxy.log_path.read_text()
