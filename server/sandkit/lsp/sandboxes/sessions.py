"""Sessions and published ports from the editor. The agent runs as the session named
``agent``: Run Agent starts it, or attaches to it when it runs already, and its terminal
shows the replayed screen first; closing the terminal detaches. Any running session can
be attached to (after a window reload the client does so for each), or stopped."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from sandkit.errors import SandkitError
from sandkit.lsp import protocol
from sandkit.lsp.sandboxes.common import Context, command
from sandkit.sandbox import lifecycle
from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.protocol import ErrorCode
from sandkit.sandbox.remote import RemoteSession, SupervisorError
from sandkit.sandbox.store import Sandbox, Store

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer

AGENT_SESSION = "agent"


def _size(p: dict[str, Any]) -> tuple[int, int]:
    return int(p.get("rows") or 24), int(p.get("cols") or 80)


def register(ctx: Context) -> None:
    server, terminals, watcher = ctx.server, ctx.terminals, ctx.watcher

    async def refreshed(sandbox: Sandbox) -> None:
        """The view follows a change made here at once, not at the next poll."""
        with contextlib.suppress(SandkitError):
            async with await lifecycle.connect(sandbox) as client:
                await watcher.refresh(sandbox.name, client)

    @command(server, protocol.RUN_AGENT)
    async def run_agent(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        sandbox = Store().get(str(p["name"]))
        config = sandbox.config()
        await ctx.started(ls, sandbox)
        extra = [str(a) for a in p.get("args") or []]
        rows, cols = _size(p)

        async def agent(client: SupervisorClient) -> RemoteSession:
            running = {s.name for s in await client.sessions() if s.running}
            if AGENT_SESSION not in running:
                argv = (await client.agent_argv(extra, interactive=True)).argv
                try:
                    return await client.start_session(
                        argv,
                        name=AGENT_SESSION,
                        env={"TERM": "xterm-256color"},  # the kits' variables are the supervisor's
                        cwd=config.workspace,
                        user="agent",
                        pty=True,
                        rows=rows,
                        cols=cols,
                    )
                except SupervisorError as exc:
                    if exc.code != ErrorCode.BAD_REQUEST:
                        raise  # else another client started it meanwhile: attach to it
            return await client.attach(AGENT_SESSION, rows, cols)

        terminal = await terminals.session(sandbox, agent)
        await refreshed(sandbox)
        return {"terminal": terminal}

    @command(server, protocol.ATTACH)
    async def attach(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        sandbox = Store().get(str(p["name"]))
        session, (rows, cols) = str(p["session"]), _size(p)

        async def opener(client: SupervisorClient) -> RemoteSession:
            return await client.attach(session, rows, cols)

        terminal = await terminals.session(sandbox, opener)
        await refreshed(sandbox)
        return {"terminal": terminal}

    @command(server, protocol.STOP_SESSION)
    async def stop_session(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        sandbox = Store().get(str(p["name"]))
        async with await lifecycle.connect(sandbox) as client:
            await client.stop_session(str(p.get("session") or AGENT_SESSION))
            await watcher.refresh(sandbox.name, client)
        return {}

    @command(server, protocol.PUBLISH_PORT)
    async def publish(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        sandbox = Store().get(str(p["name"]))
        async with await lifecycle.connect(sandbox) as client:
            result = await client.publish(str(p["spec"]))
            await watcher.refresh(sandbox.name, client)
        return {"ports": [port_row(x) for x in result.ports]}

    @command(server, protocol.UNPUBLISH_PORT)
    async def unpublish(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        sandbox = Store().get(str(p["name"]))
        async with await lifecycle.connect(sandbox) as client:
            result = await client.unpublish(str(p["spec"]))
            await watcher.refresh(sandbox.name, client)
        return {"ports": [port_row(x) for x in result.ports]}


def port_row(port: Any) -> protocol.PortRow:
    return {"guest": port.guest, "host": port.host, "host_ip": port.host_ip}
