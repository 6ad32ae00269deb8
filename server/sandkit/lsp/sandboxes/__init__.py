"""Sandboxes from the editor: the commands of the palette (lifecycle_commands.py,
sessions.py, agent_verbs.py, kit_commands.py), terminals (terminals.py), and the watcher that pushes the
list of sandboxes and turns proxy decisions into diagnostics and held requests into
prompts (watch.py). A client of the same supervisors as the CLI (see sandkit.lsp.protocol
for the messages)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sandkit.lsp import protocol
from sandkit.lsp.sandboxes import agent_verbs, kit_commands, lifecycle_commands, sessions
from sandkit.lsp.sandboxes.common import Context, get
from sandkit.lsp.sandboxes.terminals import Terminals
from sandkit.lsp.sandboxes.watch import Watcher

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer


def register(server: SandkitServer) -> None:
    ctx = Context(server, Terminals(server), Watcher(server))
    terminals = ctx.terminals

    @server.feature(types.INITIALIZED)
    def initialized(ls: SandkitServer, params: types.InitializedParams) -> None:
        ctx.watcher.start()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: SandkitServer, params: None) -> None:
        await terminals.close_all()  # execs end; sessions are detached from and run on

    @server.feature(protocol.TERMINAL_INPUT)
    async def terminal_input(ls: SandkitServer, params: Any) -> None:
        await terminals.input(
            int(get(params, "terminal")), str(get(params, "data", "")), bool(get(params, "eof"))
        )

    @server.feature(protocol.TERMINAL_CLOSE)
    def terminal_close(ls: SandkitServer, params: Any) -> None:
        terminals.close(int(get(params, "terminal")))

    @server.feature(protocol.TERMINAL_RESIZE)
    async def terminal_resize(ls: SandkitServer, params: Any) -> None:
        await terminals.resize(
            int(get(params, "terminal")), int(get(params, "rows")), int(get(params, "cols"))
        )

    lifecycle_commands.register(ctx)
    sessions.register(ctx)
    agent_verbs.register(ctx)
    kit_commands.register(ctx)
