"""The host end of the guest agent's channel (JSON lines over QEMU's unix socket)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandkit.errors import SandkitError


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


@dataclass
class Execution:
    """A process in the guest; ``events`` yields output and exit messages."""

    channel: GuestChannel
    id: int
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def stdin(self, data: bytes = b"", eof: bool = False) -> None:
        await self.channel.send(
            {"op": "stdin", "id": self.id, "data": base64.b64encode(data).decode(), "eof": eof}
        )

    async def resize(self, rows: int, cols: int) -> None:
        await self.channel.send({"op": "resize", "id": self.id, "rows": rows, "cols": cols})

    async def signal(self, number: int) -> None:
        await self.channel.send({"op": "signal", "id": self.id, "signal": number})

    async def wait(self) -> ExecResult:
        out, err = bytearray(), bytearray()
        while True:
            event = await self.events.get()
            if event["op"] == "output":
                (out if event["stream"] == "stdout" else err).extend(
                    base64.b64decode(event["data"])
                )
            elif event["op"] == "exit":
                return ExecResult(event.get("code"), event.get("signal"), bytes(out), bytes(err))


class GuestChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Queue[dict[str, Any]]] = {}
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
        """Route incoming messages to their executions until the channel closes."""
        try:
            while line := await self.reader.readline():
                message = json.loads(line)
                queue = self._waiting.get(message.get("id", -1))
                if queue is not None:
                    queue.put_nowait(message)
                    if message.get("op") == "exit":
                        self._waiting.pop(message["id"], None)
        except (ConnectionError, ValueError):
            pass
        finally:
            self.closed.set()
            for queue in self._waiting.values():
                queue.put_nowait({"op": "exit", "id": -1, "code": None, "signal": 9, "lost": True})
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
        self._waiting[rid] = execution.events
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
            }
        )
        while True:  # the first answer is "started", or an immediate exit (cannot run)
            event = await execution.events.get()
            if event["op"] == "started":
                return execution
            if event["op"] in ("exit", "output"):
                execution.events.put_nowait(event)
                if event["op"] == "exit":
                    return execution
            if event["op"] == "error":
                raise ChannelError(event.get("error", "exec failed"))

    async def run(self, argv: Sequence[str], **options: Any) -> ExecResult:
        return await (await self.exec(argv, **options)).wait()

    async def ping(self) -> None:
        rid = next(self._ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting[rid] = queue
        await self.send({"op": "ping", "id": rid})
        await queue.get()
        self._waiting.pop(rid, None)

    async def _ask(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request answered in the guest agent's own process (no program started)."""
        rid = next(self._ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting[rid] = queue
        try:
            await self.send({"op": op, "id": rid, **fields})
            reply = await queue.get()
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
