"""Agents and execs streamed to the editor (a VS Code Pseudoterminal on the other side).

An exec's terminal owns its program: closing it hangs the program up. A session's
terminal is a view of a program the supervisor owns: it starts with the session's
replayed screen, and closing it detaches (the program runs on, another server process
attaches again after a window reload)."""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandkit.errors import SandkitError
from sandkit.lsp import protocol
from sandkit.rpc import ConnectionLost, exit_status
from sandkit.sandbox import lifecycle
from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.protocol import ExitEvent, SessionDetachedEvent, SessionExitEvent
from sandkit.sandbox.remote import RemoteExec, RemoteSession
from sandkit.sandbox.store import Sandbox
from sandkit.tasks import spawn

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer


@dataclass
class Terminal:
    id: int
    remote: RemoteExec | RemoteSession
    pump: asyncio.Task[None] | None = field(default=None, repr=False)


Opener = Callable[[SupervisorClient], Awaitable[RemoteSession]]


class Terminals:
    def __init__(self, server: SandkitServer) -> None:
        self.server = server
        self._ids = itertools.count(1)
        self.open: dict[int, Terminal] = {}
        self._stopping = False  # the server is shutting down: the editor says why itself

    async def start(self, sandbox: Sandbox, argv: list[str], **options: Any) -> int:
        """The connection belongs to the terminal's pump: it ends with the program, or
        when the editor closes the terminal (the pump is cancelled)."""
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(await lifecycle.connect(sandbox))
            remote = await client.exec(argv, stdin=True, **options)
            self._refuse_if_stopping()  # the stack hangs it up
            connection = stack.pop_all()  # from here the pump's to close
        terminal = Terminal(next(self._ids), remote)
        self.open[terminal.id] = terminal
        terminal.pump = spawn(self._pump(terminal, connection), f"terminal-{terminal.id}")
        return terminal.id

    async def session(self, sandbox: Sandbox, opener: Opener) -> int:
        """A terminal on the session ``opener`` starts or attaches to (on a connection of
        its own, which the terminal's pump then holds)."""
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(await lifecycle.connect(sandbox))
            remote = await opener(client)
            self._refuse_if_stopping()  # the stack detaches from it
            connection = stack.pop_all()
        terminal = Terminal(next(self._ids), remote)
        self.open[terminal.id] = terminal
        terminal.pump = spawn(self._pump_session(terminal, connection), f"session-{terminal.id}")
        return terminal.id

    def _refuse_if_stopping(self) -> None:
        """A terminal whose start was asked for before the server began to shut down, and
        got its program after: not one more for close_all to miss."""
        if self._stopping:
            raise SandkitError("the language server is shutting down")

    async def _pump_session(
        self, terminal: Terminal, connection: contextlib.AsyncExitStack
    ) -> None:
        remote = terminal.remote
        assert isinstance(remote, RemoteSession)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        exit_params: protocol.TerminalExitParams = {
            "terminal": terminal.id,
            "code": 255,
            "detached": True,  # the editor closed the terminal, or the connection ended
        }
        try:
            async with connection:
                self._send(terminal, decoder.decode(remote.screen))  # the screen so far
                while True:
                    event = await remote.next()
                    if isinstance(event, SessionExitEvent):
                        code = exit_status(event.code, event.signal)
                        exit_params["code"], exit_params["detached"] = code, False
                        break
                    if isinstance(event, SessionDetachedEvent):
                        self._send(terminal, f"\r\n[sandkit: detached: {event.why}]\r\n")
                        break
                    self._send(terminal, decoder.decode(base64.b64decode(event.data)))
        except ConnectionLost:
            pass
        finally:
            self.open.pop(terminal.id, None)
            if not self._stopping:
                self.server.protocol.notify(protocol.TERMINAL_EXIT, exit_params)

    def _send(self, terminal: Terminal, text: str) -> None:
        if text:
            params: protocol.TerminalOutputParams = {"terminal": terminal.id, "data": text}
            self.server.protocol.notify(protocol.TERMINAL_OUTPUT, params)

    async def _pump(self, terminal: Terminal, connection: contextlib.AsyncExitStack) -> None:
        decoders = {
            s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")
        }
        code = 255  # the connection ended first, or the editor closed the terminal
        remote = terminal.remote
        assert isinstance(remote, RemoteExec)
        try:
            async with connection:
                while not isinstance(event := await remote.next(), ExitEvent):
                    self._send(
                        terminal, decoders[event.stream].decode(base64.b64decode(event.data))
                    )
                code = exit_status(event.code, event.signal)
        except ConnectionLost:
            pass
        finally:
            self.open.pop(terminal.id, None)
            if not self._stopping:
                self.server.protocol.notify(
                    protocol.TERMINAL_EXIT, {"terminal": terminal.id, "code": code}
                )

    async def input(self, terminal_id: int, data: str, eof: bool) -> None:
        terminal = self.open.get(terminal_id)
        if terminal is not None:
            with contextlib.suppress(Exception):  # it may have ended meanwhile
                if isinstance(terminal.remote, RemoteSession):
                    await terminal.remote.input(data.encode(), eof)
                else:
                    await terminal.remote.stdin(data.encode(), eof)

    async def resize(self, terminal_id: int, rows: int, cols: int) -> None:
        terminal = self.open.get(terminal_id)
        if terminal is not None:
            with contextlib.suppress(Exception):
                await terminal.remote.resize(rows, cols)

    def close(self, terminal_id: int) -> None:
        """The editor closed the terminal: leaving the supervisor hangs an exec up, and
        detaches from a session (which runs on)."""
        terminal = self.open.get(terminal_id)
        if terminal is not None and terminal.pump is not None:
            terminal.pump.cancel()  # its connection closes as the pump ends

    async def close_all(self) -> None:
        """The server is shutting down: hangs its execs up and detaches from its sessions,
        and waits (at most 1.5 s) until they have let go. No terminal is reported ended:
        an exit code would read as the program's own failure, while the editor knows the
        server stopped and says that in each terminal."""
        self._stopping = True
        pumps = [t.pump for t in self.open.values() if t.pump is not None]
        for pump in pumps:
            pump.cancel()
        if pumps:  # within the 2 s the language client gives shutdown before it kills
            await asyncio.wait(pumps, timeout=1.5)
