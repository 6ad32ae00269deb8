"""A fast origin server for the proxy benchmarks (so the origin is never the bottleneck):
any request gets a 1 KiB body, except /big, which is a large file sent with sendfile.

    python bench/origin.py --http PORT [--https PORT --cert PEM] [--big FILE]
Prints "ready" when listening."""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path

BODY = b"x" * 1024
SMALL = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n" + BODY


class Origin(asyncio.Protocol):
    def __init__(self, big: Path | None) -> None:
        self.big = big
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            if head.split(b" ", 2)[1:2] == [b"/big"] and self.big is not None:
                asyncio.get_running_loop().create_task(self.send_big())
                return
            self.transport.write(SMALL)

    async def send_big(self) -> None:
        assert self.transport is not None and self.big is not None
        size = self.big.stat().st_size
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        with self.big.open("rb") as f:
            await asyncio.get_running_loop().sendfile(self.transport, f)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, required=True)
    parser.add_argument("--https", type=int)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--big", type=Path)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(lambda: Origin(args.big), "127.0.0.1", args.http, backlog=1024)
    ]
    if args.https:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert)
        servers.append(
            await loop.create_server(
                lambda: Origin(None), "127.0.0.1", args.https, ssl=ctx, backlog=1024
            )
        )
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
