"""Agents and execs streamed to the editor (a VS Code Pseudoterminal on the other side)."""

from __future__ import annotations

import base64
import codecs
import contextlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandkit.lsp import protocol
from sandkit.sandbox import lifecycle
from sandkit.sandbox.client import RemoteExec, SupervisorClient
from sandkit.sandbox.store import Sandbox
from sandkit.tasks import spawn

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer


@dataclass
class Terminal:
    id: int
    client: SupervisorClient
    remote: RemoteExec


class Terminals:
    def __init__(self, server: SandkitServer) -> None:
        self.server = server
        self._ids = itertools.count(1)
        self.open: dict[int, Terminal] = {}

    async def start(self, sandbox: Sandbox, argv: list[str], **options: Any) -> int:
        client = await lifecycle.connect(sandbox)
        try:
            remote = await client.exec(argv, stdin=True, **options)
        except BaseException:
            client.close()
            raise
        terminal = Terminal(next(self._ids), client, remote)
        self.open[terminal.id] = terminal
        spawn(self._pump(terminal), f"terminal-{terminal.id}")
        return terminal.id

    async def _pump(self, terminal: Terminal) -> None:
        decoders = {
            s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")
        }
        code = 255
        try:
            while True:
                event = await terminal.remote.events.get()
                if event["event"] == "output":
                    text = decoders[event["stream"]].decode(base64.b64decode(event["data"]))
                    if text:
                        self.server.protocol.notify(
                            protocol.TERMINAL_OUTPUT, {"terminal": terminal.id, "data": text}
                        )
                elif event["event"] == "exit":
                    if event.get("code") is not None:
                        code = int(event["code"])
                    else:
                        code = 128 + int(event.get("signal") or 0)
                    break
        finally:
            self.open.pop(terminal.id, None)
            terminal.client.close()
            self.server.protocol.notify(
                protocol.TERMINAL_EXIT, {"terminal": terminal.id, "code": code}
            )

    async def input(self, terminal_id: int, data: str, eof: bool) -> None:
        terminal = self.open.get(terminal_id)
        if terminal is not None:
            with contextlib.suppress(Exception):  # it may have ended meanwhile
                await terminal.remote.stdin(data.encode(), eof)

    async def resize(self, terminal_id: int, rows: int, cols: int) -> None:
        terminal = self.open.get(terminal_id)
        if terminal is not None:
            with contextlib.suppress(Exception):
                await terminal.remote.resize(rows, cols)

    def close(self, terminal_id: int) -> None:
        """The editor closed the terminal: leaving the supervisor hangs the program up."""
        terminal = self.open.get(terminal_id)
        if terminal is not None:
            terminal.client.close()

    def close_all(self) -> None:
        for terminal in list(self.open.values()):
            terminal.client.close()
