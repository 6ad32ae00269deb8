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
import contextlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandkit.errors import SandkitError
from sandkit.rpc import HOLD, Connection, ConnectionLost, Inbox, exit_status, open_unix

__all__ = ["HOLD", "ChannelError", "ExecResult", "Execution", "GuestChannel", "Inbox"]

WINDOW = 1 << 20  # output bytes an exec may have unacknowledged: the guest pauses past it
ACK_EVERY = WINDOW // 4  # acknowledged in steps, not message by message
# What the host holds for one request (rpc.HOLD, 2 MiB), whatever the guest sends: a full
# window as base64 JSON lines (4/3 of it), what it read past the window, the messages around it.
assert HOLD >= 2 * WINDOW
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
        return exit_status(self.code, self.signal)


def _raw_size(data: str) -> int:
    """The bytes a base64 text stands for."""
    return len(data) * 3 // 4 - data[-2:].count("=")


class Execution:
    """A process in the guest. Take its output and exit messages with :meth:`next`: that
    is what acknowledges output, so the guest keeps sending."""

    def __init__(self, channel: GuestChannel, rid: int) -> None:
        self.channel, self.id = channel, rid
        self.inbox = channel.connection.open(rid)
        self.window: int | None = None  # set when the guest agrees to flow control
        self._taken = 0  # output bytes taken but not acknowledged yet

    @property
    def buffered(self) -> int:
        """Bytes of messages received for this process that no one has taken yet."""
        return self.inbox.held

    async def next(self) -> dict[str, Any]:
        """The next output or exit message; a lost channel ends it as killed (``lost``)."""
        try:
            event = await self.inbox.get()
        except ConnectionLost:
            return {"op": "exit", "id": self.id, "code": None, "signal": 9, "lost": True}
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
        # Messages go to their request by id (the rest are dropped: nothing in the guest
        # speaks unasked once ready); an exit is the last of its exec's.
        self.connection = Connection(
            reader, writer, final=lambda m: m.get("op") == "exit", unsolicited=False
        )
        self.closed = self.connection.closed

    @classmethod
    async def connect(cls, socket: Path, timeout: float, ready: bool = True) -> GuestChannel:
        """Connect and wait for the agent's ready line (it comes once the guest booted).
        A guest restored from a snapshot said ready long ago: with ``ready=False`` the
        caller pings it instead."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reader, writer = await open_unix(str(socket))
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
        try:
            said = json.loads(line) if line else None
        except ValueError:
            said = None
        if not isinstance(said, dict) or said.get("op") != "ready":
            writer.close()
            raise ChannelError(f"the guest agent sent {line[:100]!r} instead of ready")
        return cls(reader, writer)

    async def send(self, message: Mapping[str, Any]) -> None:
        """ConnectionLost (a ConnectionError) once the channel is gone."""
        await self.connection.send(message)

    async def pump(self) -> None:
        """Route incoming messages to their requests until the channel closes; then each
        waiting request ends as lost. Only a guest past its window fills a request's inbox:
        the channel is then not read until that is consumed."""
        await self.connection.run()

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
        try:
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
            # The first answer is "started" (with the window, if the guest does flow
            # control), or an immediate exit (the program cannot run).
            event = await execution.inbox.get()
        except ConnectionLost:
            self.connection.discard(rid)
            raise
        if event["op"] == "started":
            window = event.get("window")
            execution.window = window if isinstance(window, int) and window > 0 else None
            return execution
        if event["op"] == "error":
            self.connection.discard(rid)
            raise ChannelError(str(event.get("error", "exec failed")))
        execution.inbox.unget(event)  # output or exit: the consumer's to see
        return execution

    async def run(self, argv: Sequence[str], **options: Any) -> ExecResult:
        return await (await self.exec(argv, **options)).wait()

    async def ping(self) -> None:
        """A round trip (it also returns when the channel is lost)."""
        rid = next(self._ids)
        with contextlib.suppress(ConnectionLost):
            await self.connection.request(rid, {"op": "ping", "id": rid})

    async def _ask(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request answered in the guest agent's own process (no program started)."""
        rid = next(self._ids)
        try:
            reply = await self.connection.request(rid, {"op": op, "id": rid, **fields})
        except ConnectionLost:
            raise ChannelError("the guest agent is gone") from None
        if reply.get("op") == "error":
            raise ChannelError(str(reply.get("error") or f"{op} failed in the guest"))
        return reply

    async def adopt(self, **fields: Any) -> dict[str, float]:
        """The in-process adoption step of a pooled VM (see guest/files.adopt): each of
        its steps' milliseconds in the guest."""
        steps = (await self._ask("adopt", **fields)).get("ms")
        return dict(steps) if isinstance(steps, dict) else {}

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
        """Close the channel: every waiting request ends as lost."""
        self.connection.close()
