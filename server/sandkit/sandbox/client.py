"""The client side of a supervisor's control socket (used by the CLI and the editor)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sandkit.sandbox.protocol import encode
from sandkit.sandbox.store import SandboxError
from sandkit.tasks import spawn


class RemoteExec:
    def __init__(self, client: SupervisorClient, exec_id: int) -> None:
        self.client, self.id = client, exec_id
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def stdin(self, data: bytes = b"", eof: bool = False) -> None:
        await self.client.call(
            "stdin", {"exec": self.id, "data": base64.b64encode(data).decode(), "eof": eof}
        )

    async def resize(self, rows: int, cols: int) -> None:
        await self.client.call("resize", {"exec": self.id, "rows": rows, "cols": cols})

    async def signal(self, number: int) -> None:
        await self.client.call("signal", {"exec": self.id, "signal": number})


class SupervisorClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._execs: dict[int, RemoteExec] = {}
        self._early: dict[int, list[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        spawn(self._pump(), "supervisor-client")

    @classmethod
    async def connect(cls, socket: Path) -> SupervisorClient:
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket), limit=1 << 22)
        except (FileNotFoundError, ConnectionRefusedError):
            raise SandboxError("the sandbox's supervisor is not answering") from None
        return cls(reader, writer)

    async def _pump(self) -> None:
        try:
            while line := await self.reader.readline():
                message = json.loads(line)
                if "event" in message and "exec" not in message:
                    self.events.put_nowait(message)  # approvals, after a watch call
                elif "event" in message:
                    target = self._execs.get(message["exec"])
                    if target is not None:
                        target.events.put_nowait(message)
                    else:  # an event can overtake the reply that names its exec
                        self._early.setdefault(message["exec"], []).append(message)
                elif message.get("id") in self._replies:
                    self._replies.pop(message["id"]).set_result(message)
        except (ConnectionError, ValueError):
            pass
        finally:
            for future in self._replies.values():
                if not future.done():
                    future.set_result({"error": "the supervisor closed the connection"})
            for target in self._execs.values():
                target.events.put_nowait({"event": "exit", "signal": 9, "lost": True})
            self.events.put_nowait({"event": "closed"})  # for watchers of approvals

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = future
        self.writer.write(encode({"id": rid, "method": method, "params": dict(params or {})}))
        await self.writer.drain()
        reply = await future
        if "error" in reply:
            raise SandboxError(str(reply["error"]))
        return reply.get("result")

    async def exec(self, argv: Sequence[str], **options: Any) -> RemoteExec:
        result = await self.call("exec", {"argv": list(argv), **options})
        remote = RemoteExec(self, int(result["exec"]))
        self._execs[remote.id] = remote
        for event in self._early.pop(remote.id, []):
            remote.events.put_nowait(event)
        return remote

    def close(self) -> None:
        self.writer.close()
