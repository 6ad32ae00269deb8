"""JSON lines over asyncio streams: the connection under both of sandkit's RPC channels,
the guest channel (vm/channel.py) and the supervisor client (sandbox/client.py); and the
same framing over a blocking socket (:class:`LineSocket`) for a one-shot call that needs
no event loop (`sandkit exec`, cli/execute.py).

Sends are serialised (one line at a time, drained). One reader routes each incoming
object to the inbox its key names (a request's id, an exec's id: the caller says which),
unsolicited ones to ``events``. Every inbox is bounded in bytes: when one is full the
reader stops reading the connection until its consumer takes some, so a peer that floods
cannot grow this process's memory, it stalls its own connection. When the connection
ends, each waiting inbox hands out what it holds and then raises :class:`ConnectionLost`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import socket
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from sandkit.errors import SandkitError

# asyncio is imported where it is used (~16 ms): the blocking LineSocket runs without it.
if TYPE_CHECKING:
    import asyncio

LINE_LIMIT = 1 << 22  # one message; longer is a broken (or hostile) peer: the connection ends
HOLD = 2 << 20  # bytes of messages one inbox holds before the reader waits for its consumer


class ConnectionLost(SandkitError, ConnectionError):
    """The other end closed the connection or broke the protocol. A ConnectionError too,
    for callers that already handled a closed socket as one."""


def exit_status(code: int | None, signal: int | None) -> int:
    """As a shell reports a process's end: its code, or 128 + the signal number."""
    return code if code is not None else 128 + (signal or 0)


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """One line's message; None for what is not a JSON object (skipped, like any message
    no one asked for)."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class Inbox:
    """Messages for one consumer, bounded in bytes: ``full`` tells the reader to wait
    (:meth:`room`) until the consumer has taken some. Once failed, :meth:`get` raises
    after the messages already held."""

    def __init__(self, limit: int = HOLD) -> None:
        import asyncio

        self.limit = limit
        self.held = 0
        self._items: collections.deque[tuple[dict[str, Any], int]] = collections.deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._lost: ConnectionLost | None = None
        self.ended = False  # its stream's final message came: nothing more will

    @property
    def full(self) -> bool:
        return self.held >= self.limit

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def put(self, message: dict[str, Any], size: int = 0) -> None:
        self._items.append((message, size))
        self.held += size
        self._ready.set()
        if self.full:
            self._room.clear()

    def unget(self, message: dict[str, Any]) -> None:
        """Put back a message that was taken, for the consumer to take first."""
        self._items.appendleft((message, 0))
        self._ready.set()

    def fail(self, error: ConnectionLost) -> None:
        if self._lost is None:
            self._lost = error
        self._ready.set()
        self._room.set()  # no reader waits on a lost connection

    async def room(self) -> None:
        await self._room.wait()

    async def get(self) -> dict[str, Any]:
        while not self._items:
            if self._lost is not None:
                raise ConnectionLost(str(self._lost))
            self._ready.clear()
            await self._ready.wait()
        message, size = self._items.popleft()
        self.held -= size
        if not self.full:
            self._room.set()
        return message


def _message_id(message: dict[str, Any]) -> Hashable | None:
    rid = message.get("id")
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None


async def open_unix(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams to a unix socket whose reader takes lines up to LINE_LIMIT."""
    import asyncio

    return await asyncio.open_unix_connection(path, limit=LINE_LIMIT)


class Connection:
    """One JSON-lines connection. ``key`` names the inbox a message goes to (None: an
    unsolicited event, for ``events`` if the caller reads them, else dropped); a message ``final`` says ends its key's stream closes that inbox
    (once taken). A message for a key no one opened is dropped, unless ``early`` says to
    keep it for a consumer that will open that key (an event can overtake the reply that
    names its stream)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        key: Callable[[dict[str, Any]], Hashable | None] = _message_id,
        final: Callable[[dict[str, Any]], bool] | None = None,
        early: Callable[[dict[str, Any]], bool] | None = None,
        unsolicited: bool = True,
        line_limit: int = LINE_LIMIT,
    ) -> None:
        import asyncio

        self.reader, self.writer = reader, writer
        self._key, self._final, self._early = key, final, early
        self.line_limit, self._unsolicited = line_limit, unsolicited
        self._inboxes: dict[Hashable, Inbox] = {}
        self._unclaimed: dict[Hashable, Inbox] = {}  # kept by ``early``, not opened yet
        self.events = Inbox()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.lost: ConnectionLost | None = None

    # -- sending --------------------------------------------------------------------------
    async def send(self, message: Mapping[str, Any]) -> None:
        """One line, drained before the next send starts; ConnectionLost if it is gone."""
        if self.lost is not None:
            raise ConnectionLost(str(self.lost))
        async with self._lock:
            try:
                self.writer.write(encode(message))
                await self.writer.drain()
            except ConnectionError as exc:
                raise ConnectionLost(f"the connection broke: {exc}") from None

    # -- inboxes --------------------------------------------------------------------------
    def open(self, key: Hashable, limit: int = HOLD) -> Inbox:
        """The inbox for ``key`` (with what arrived early for it, if anything did)."""
        inbox = self._inboxes.get(key)
        if inbox is None:
            inbox = self._unclaimed.pop(key, None) or Inbox(limit)
            if not inbox.ended:
                self._inboxes[key] = inbox
                if self.lost is not None:
                    inbox.fail(self.lost)
        return inbox

    def discard(self, key: Hashable) -> None:
        self._inboxes.pop(key, None)

    async def request(self, key: Hashable, message: Mapping[str, Any]) -> dict[str, Any]:
        """Send ``message`` and return the first message routed to ``key``."""
        inbox = self.open(key)
        try:
            await self.send(message)
            return await inbox.get()
        finally:
            self.discard(key)

    # -- reading --------------------------------------------------------------------------
    async def run(self) -> None:
        """Read and route until the connection ends; then fail every inbox."""
        import asyncio

        reason = "the other end closed the connection"
        try:
            while True:
                try:
                    line = await self.reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    reason = "the other end sent a line over the reader's limit"
                    break
                if len(line) > self.line_limit:
                    reason = f"the other end sent a line over {self.line_limit} bytes"
                    break
                await self._route(line)
        except ConnectionError as exc:
            reason = f"the connection broke: {exc}"
        finally:
            self.writer.close()  # a peer we stopped reading must not wait on us
            self._lose(ConnectionLost(reason))

    async def _route(self, line: bytes) -> None:
        message = decode(line)
        if message is None:
            return
        key = self._key(message)
        if key is None:
            inbox: Inbox | None = self.events if self._unsolicited else None
        else:
            inbox = self._inboxes.get(key)
            if inbox is None and self._early is not None and self._early(message):
                inbox = self._unclaimed.setdefault(key, Inbox())
        if inbox is None:
            return
        inbox.put(message, len(line))
        if key is not None and self._final is not None and self._final(message):
            inbox.ended = True
            if self._inboxes.get(key) is inbox:
                del self._inboxes[key]
        elif inbox.full:  # read no more until its consumer takes some
            await inbox.room()

    def _lose(self, error: ConnectionLost) -> None:
        if self.lost is None:
            self.lost = error
        for inbox in [*self._inboxes.values(), *self._unclaimed.values(), self.events]:
            inbox.fail(self.lost)
        self._inboxes.clear()
        self.closed.set()

    def start(self) -> None:
        """Read in a task this connection owns (cancelled by :meth:`close`)."""
        import asyncio

        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="rpc-reader")

    def close(self) -> None:
        """Close the connection; waiting consumers get ConnectionLost."""
        self.writer.close()
        if self._task is not None:
            self._task.cancel()
        self._lose(ConnectionLost("the connection was closed"))

    async def aclose(self) -> None:
        import asyncio

        self.close()
        if self._task is not None:
            await asyncio.wait([self._task])
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class LineSocket:
    """The same JSON lines over a blocking socket, for a one-shot client with one request
    at a time in flight and no event loop to start (cli/execute.py). The caller routes
    what :meth:`receive` returns; the line limit is Connection's."""

    def __init__(self, sock: socket.socket, line_limit: int = LINE_LIMIT) -> None:
        self.sock, self.line_limit = sock, line_limit
        self._buffer = bytearray()

    @classmethod
    def connect_unix(cls, path: str) -> LineSocket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return cls(sock)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: Mapping[str, Any]) -> None:
        try:
            self.sock.sendall(encode(message))
        except OSError as exc:
            raise ConnectionLost(f"the connection broke: {exc}") from None

    def receive(self) -> list[dict[str, Any]]:
        """The messages one read completes (it waits for bytes if none are ready), in
        order; ConnectionLost when the other end has closed or sent a line over the limit."""
        try:
            chunk = self.sock.recv(1 << 16)
        except OSError as exc:
            raise ConnectionLost(f"the connection broke: {exc}") from None
        if not chunk:
            raise ConnectionLost("the other end closed the connection")
        self._buffer += chunk
        messages = []
        while (end := self._buffer.find(b"\n")) >= 0 and end < self.line_limit:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            if (message := decode(line)) is not None:
                messages.append(message)
        if len(self._buffer) > self.line_limit or end >= self.line_limit:
            raise ConnectionLost(f"the other end sent a line over {self.line_limit} bytes")
        return messages

    def close(self) -> None:
        self.sock.close()
