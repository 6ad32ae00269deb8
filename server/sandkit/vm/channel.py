"""The host end of the guest agent's channel (JSON lines over QEMU's unix socket).

Flow control: an exec asks for a window of output bytes. The guest stops reading the
child's pty/pipes while that many bytes are unacknowledged, and the host acknowledges
(``{"op": "ack", "id": N, "bytes": n}``) as its consumer takes the output, so a slow or
absent reader pauses the child instead of filling the host's memory. The host does not
rely on the guest for that: what it holds for each request is bounded in bytes, and a
guest that sends past its window finds the channel no longer read until that is consumed
(it stalls its own channel, nothing more)."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandkit.errors import SandkitError

WINDOW = 1 << 20  # output bytes an exec may have unacknowledged: the guest pauses past it
ACK_EVERY = WINDOW // 4  # acknowledged in steps, not message by message
# What the host holds for one request, whatever the guest sends: a full window as base64
# JSON lines (4/3 of it), what it read past the window, the messages around it.
HOLD = 2 * WINDOW
KEEP = 1 << 20  # of each stream, the bytes ExecResult keeps (the end: errors are there)


class ChannelError(SandkitError):
    """The guest agent cannot be reached or broke the protocol."""


@dataclass
class ExecResult:
    code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes

    @property
    def exit_status(self) -> int:
        """As a shell reports it: the code, or 128 + the signal number."""
        return self.code if self.code is not None else 128 + (self.signal or 0)


class Inbox:
    """Messages for one request, bounded in bytes: ``full`` tells the channel's reader to
    wait until the consumer has taken some."""

    def __init__(self, limit: int = HOLD) -> None:
        self.limit = limit
        self.held = 0
        self._items: collections.deque[tuple[dict[str, Any], int]] = collections.deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    @property
    def full(self) -> bool:
        return self.held >= self.limit

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

    async def room(self) -> None:
        await self._room.wait()

    async def get(self) -> dict[str, Any]:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        message, size = self._items.popleft()
        self.held -= size
        if not self.full:
            self._room.set()
        return message


def _raw_size(data: str) -> int:
    """The bytes a base64 text stands for."""
    return len(data) * 3 // 4 - data[-2:].count("=")


class Execution:
    """A process in the guest. Take its output and exit messages with :meth:`next`: that
    is what acknowledges output, so the guest keeps sending."""

    def __init__(self, channel: GuestChannel, rid: int) -> None:
        self.channel, self.id = channel, rid
        self.inbox = Inbox()
        self.window: int | None = None  # set when the guest agrees to flow control
        self._taken = 0  # output bytes taken but not acknowledged yet

    @property
    def buffered(self) -> int:
        """Bytes of messages received for this process that no one has taken yet."""
        return self.inbox.held

    async def next(self) -> dict[str, Any]:
        event = await self.inbox.get()
        if event.get("op") == "output" and self.window is not None:
            self._taken += _raw_size(str(event.get("data", "")))
            if self._taken >= min(ACK_EVERY, self.window // 2):
                taken, self._taken = self._taken, 0
                with contextlib.suppress(ConnectionError):
                    await self.channel.send({"op": "ack", "id": self.id, "bytes": taken})
        return event

    async def stdin(self, data: bytes = b"", eof: bool = False) -> None:
        await self.channel.send(
            {"op": "stdin", "id": self.id, "data": base64.b64encode(data).decode(), "eof": eof}
        )

    async def resize(self, rows: int, cols: int) -> None:
        await self.channel.send({"op": "resize", "id": self.id, "rows": rows, "cols": cols})

    async def signal(self, number: int) -> None:
        await self.channel.send({"op": "signal", "id": self.id, "signal": number})

    async def wait(self, keep: int = KEEP) -> ExecResult:
        """Run to the end; of each stream, the last ``keep`` bytes are kept."""
        out, err = bytearray(), bytearray()
        while True:
            event = await self.next()
            if event["op"] == "output":
                buffer = out if event["stream"] == "stdout" else err
                buffer.extend(base64.b64decode(event["data"]))
                if len(buffer) > keep:
                    del buffer[:-keep]
            elif event["op"] == "exit":
                return ExecResult(event.get("code"), event.get("signal"), bytes(out), bytes(err))


class GuestChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, Inbox] = {}
        self._lock = asyncio.Lock()
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, socket: Path, timeout: float, ready: bool = True) -> GuestChannel:
        """Connect and wait for the agent's ready line (it comes once the guest booted).
        A guest restored from a snapshot said ready long ago: with ``ready=False`` the
        caller pings it instead."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(socket), limit=1 << 22)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if loop.time() > deadline:
                    raise ChannelError(f"the VM's agent socket {socket} never appeared") from None
                await asyncio.sleep(0.02)
        if not ready:
            return cls(reader, writer)
        try:
            async with asyncio.timeout(max(0.1, deadline - loop.time())):
                line = await reader.readline()
        except TimeoutError:
            writer.close()
            raise ChannelError(f"the guest agent did not answer within {timeout:.0f} s") from None
        if not line or json.loads(line).get("op") != "ready":
            writer.close()
            raise ChannelError(f"the guest agent sent {line[:100]!r} instead of ready")
        return cls(reader, writer)

    async def send(self, message: Mapping[str, Any]) -> None:
        async with self._lock:
            self.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            await self.writer.drain()

    async def pump(self) -> None:
        """Route incoming messages to their requests until the channel closes."""
        try:
            while line := await self.reader.readline():
                message = json.loads(line)
                if not isinstance(message, dict):
                    continue
                inbox = self._waiting.get(message.get("id", -1))
                if inbox is None:
                    continue
                inbox.put(message, len(line))
                if message.get("op") == "exit":
                    self._waiting.pop(message["id"], None)
                elif inbox.full:  # only a guest past its window gets here: read no more
                    await inbox.room()
        except (ConnectionError, ValueError):
            pass
        finally:
            self.closed.set()
            for inbox in self._waiting.values():
                inbox.put({"op": "exit", "id": -1, "code": None, "signal": 9, "lost": True})
            self._waiting.clear()

    async def exec(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str = "root",
        pty: bool = False,
        rows: int = 24,
        cols: int = 80,
        stdin: bool = False,
    ) -> Execution:
        rid = next(self._ids)
        execution = Execution(self, rid)
        self._waiting[rid] = execution.inbox
        await self.send(
            {
                "op": "exec",
                "id": rid,
                "argv": list(argv),
                "env": dict(env or {}),
                "cwd": cwd,
                "user": user,
                "pty": pty,
                "rows": rows,
                "cols": cols,
                "stdin": stdin,
                "window": WINDOW,
            }
        )
        # The first answer is "started" (with the window, if the guest does flow control),
        # or an immediate exit (the program cannot run).
        event = await execution.inbox.get()
        if event["op"] == "started":
            window = event.get("window")
            execution.window = window if isinstance(window, int) and window > 0 else None
            return execution
        if event["op"] == "error":
            self._waiting.pop(rid, None)
            raise ChannelError(event.get("error", "exec failed"))
        execution.inbox.unget(event)  # output or exit: the consumer's to see
        return execution

    async def run(self, argv: Sequence[str], **options: Any) -> ExecResult:
        return await (await self.exec(argv, **options)).wait()

    async def ping(self) -> None:
        """A round trip (it also returns when the channel is lost)."""
        rid = next(self._ids)
        inbox = Inbox()
        self._waiting[rid] = inbox
        try:
            await self.send({"op": "ping", "id": rid})
            await inbox.get()
        finally:
            self._waiting.pop(rid, None)

    async def _ask(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request answered in the guest agent's own process (no program started)."""
        rid = next(self._ids)
        inbox = Inbox()
        self._waiting[rid] = inbox
        try:
            await self.send({"op": op, "id": rid, **fields})
            reply = await inbox.get()
        finally:
            self._waiting.pop(rid, None)
        if reply.get("op") == "error" or reply.get("lost"):
            raise ChannelError(str(reply.get("error") or "the guest agent is gone"))
        return reply

    async def adopt(self, **fields: Any) -> None:
        """The in-process adoption step of a pooled VM (see agent.adopt)."""
        await self._ask("adopt", **fields)

    async def read_file(self, path: str) -> bytes | None:
        data = (await self._ask("read", path=path)).get("data")
        return base64.b64decode(data) if data is not None else None

    async def write_file(
        self,
        path: str,
        data: bytes,
        mode: int = 0o644,
        user: str = "root",
        keep: bool = False,
        append: bool = False,
    ) -> bool:
        """Written as root and then given to ``user``; with ``keep`` an existing file stays
        (returns False)."""
        reply = await self._ask(
            "write",
            path=path,
            data=base64.b64encode(data).decode(),
            mode=mode,
            user=user,
            keep=keep,
            append=append,
        )
        return bool(reply.get("written"))

    async def poweroff(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.send({"op": "poweroff"})

    def close(self) -> None:
        self.writer.close()
