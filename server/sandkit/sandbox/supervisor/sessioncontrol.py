"""Control handlers for sessions and published ports; control.py puts ``HANDLERS`` in its
table (this module does not import it, so either may be imported first)."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sandkit.sandbox import protocol as p
from sandkit.sandbox.state import SandboxState, require

if TYPE_CHECKING:
    from sandkit.sandbox.supervisor.control import Connection
    from sandkit.sandbox.supervisor.process import Supervisor

RUNNING = SandboxState.RUNNING


# -- sessions -------------------------------------------------------------------------------------
def _attached(sup: Supervisor, name: str, screen: bytes) -> p.SessionAttached:
    from sandkit.sandbox.supervisor.sessions import info

    return p.SessionAttached(
        session=info(sup.sessions.get(name)), screen=base64.b64encode(screen).decode()
    )


async def sessions(sup: Supervisor, conn: Connection, params: p.Empty) -> p.SessionsResult:
    from sandkit.sandbox.supervisor.sessions import info

    return p.SessionsResult(sessions=[info(s) for s in sup.sessions.table.all()])


@require(RUNNING)
async def session_start(
    sup: Supervisor, conn: Connection, params: p.SessionStartParams
) -> p.SessionAttached:
    session = await sup.sessions.start(params)
    screen = b""
    if params.attach:
        screen = sup.sessions.attach(conn, session.name, params.rows, params.cols, True)
    return _attached(sup, session.name, screen)


async def session_attach(
    sup: Supervisor, conn: Connection, params: p.SessionAttachParams
) -> p.SessionAttached:
    screen = sup.sessions.attach(conn, params.session, params.rows, params.cols, params.interactive)
    return _attached(sup, params.session, screen)


async def session_detach(
    sup: Supervisor, conn: Connection, params: p.SessionParams
) -> p.EmptyResult:
    sup.sessions.get(params.session)
    sup.sessions.detach(conn, params.session)
    return p.EmptyResult()


@require(RUNNING)
async def session_stop(sup: Supervisor, conn: Connection, params: p.SessionParams) -> p.EmptyResult:
    await sup.sessions.stop(params.session)
    return p.EmptyResult()


@require(RUNNING)
async def session_input(
    sup: Supervisor, conn: Connection, params: p.SessionInputParams
) -> p.EmptyResult:
    await sup.sessions.input(params.session, params.raw(), params.eof)
    return p.EmptyResult()


@require(RUNNING)
async def session_resize(
    sup: Supervisor, conn: Connection, params: p.SessionResizeParams
) -> p.EmptyResult:
    await sup.sessions.resize(conn, params.session, params.rows, params.cols)
    return p.EmptyResult()


# -- published ports ------------------------------------------------------------------------------
async def ports(sup: Supervisor, conn: Connection, params: p.Empty) -> p.PortsResult:
    if sup.runstate is RUNNING:
        await sup.ports.refresh()
    return sup.ports.result()


@require(RUNNING)
async def publish(sup: Supervisor, conn: Connection, params: p.PublishParams) -> p.PortsResult:
    await sup.ports.publish(params.spec)
    return sup.ports.result()


@require(RUNNING)
async def unpublish(sup: Supervisor, conn: Connection, params: p.UnpublishParams) -> p.PortsResult:
    await sup.ports.unpublish(params.spec)
    return sup.ports.result()


HANDLERS: dict[str, Callable[..., Awaitable[p.Result]]] = {
    "sessions": sessions,
    "session-start": session_start,
    "session-attach": session_attach,
    "session-detach": session_detach,
    "session-stop": session_stop,
    "session-input": session_input,
    "session-resize": session_resize,
    "ports": ports,
    "publish": publish,
    "unpublish": unpublish,
}
