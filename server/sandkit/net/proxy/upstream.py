"""Connections to origins: one kept-alive connection per client connection, and the
byte splice of a tunnel or an upgraded connection."""

from __future__ import annotations

import asyncio
import ssl

from sandkit.net.guard import IPAddress
from sandkit.net.httpio import MessageReader
from sandkit.net.proxy.settings import CONNECT_TIMEOUT, COPY_SIZE


class Upstream:
    """One kept-alive connection to an origin, owned by one client connection."""

    def __init__(
        self,
        key: tuple[str, int],
        address: IPAddress,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.key, self.address, self.reader, self.writer = key, address, reader, writer
        self.messages = MessageReader(reader, "response")
        self.closed = False

    @classmethod
    async def open(
        cls, host: str, port: int, address: IPAddress, tls: ssl.SSLContext | None
    ) -> Upstream:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                str(address), port, ssl=tls, limit=COPY_SIZE, server_hostname=host if tls else None
            ),
            CONNECT_TIMEOUT,
        )
        return cls((host, port), address, reader, writer)

    def close(self) -> None:
        self.closed = True
        self.writer.transport.abort()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> int:
    total = 0
    try:
        while data := await src.read(COPY_SIZE):
            total += len(data)
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()  # half-close: the other direction may still be talking
    except (ConnectionError, OSError):
        dst.transport.abort()
    return total


async def splice(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    up_r: asyncio.StreamReader,
    up_w: asyncio.StreamWriter,
) -> tuple[int, int]:
    """Copy both ways until both ends are done; the bytes sent up and down."""
    try:
        up, down = await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
    finally:
        up_w.transport.abort()
    return up, down
