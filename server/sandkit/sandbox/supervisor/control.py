"""The control socket: one task per client connection (with a TaskGroup of its own for
the output it forwards and the events it watches), and a table from method name to a
handler with typed params (sandbox/protocol.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from sandkit.errors import SandkitError
from sandkit.logs import logger
from sandkit.net.actions import Action
from sandkit.sandbox import protocol as p
from sandkit.sandbox.protocol import ControlError, ErrorCode
from sandkit.sandbox.sessions import Attachment
from sandkit.sandbox.state import SandboxState, StateError, require
from sandkit.sandbox.supervisor import adopt, approvals, sessioncontrol, workspace
from sandkit.vm.channel import Execution, GuestChannel

if TYPE_CHECKING:
    from sandkit.sandbox.supervisor.process import Supervisor

log = logger("sandkit.supervisor")
S = SandboxState
RUNNING = S.RUNNING


class Connection:
    """One client: the execs it started (ended when it leaves) and its background tasks."""

    def __init__(self, writer: asyncio.StreamWriter, tasks: asyncio.TaskGroup) -> None:
        self.writer, self.tasks = writer, tasks
        self.executions: dict[int, Execution] = {}
        self.attachments: dict[str, Attachment] = {}  # sessions this client is attached to
        self.watching = False
        self.after_reply: list[Callable[[], None]] = []
        self._lock = asyncio.Lock()
        self._children: set[asyncio.Task[None]] = set()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._lock:
            self.writer.write(p.encode(message))
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = self.tasks.create_task(_quiet(coro, name), name=name)
        self._children.add(task)
        task.add_done_callback(self._children.discard)

    async def forward(self, execution: Execution) -> None:
        # Backpressure end to end: next() acknowledges output to the guest, and is not
        # called again until this client's socket took the last event (send drains), so
        # a slow client pauses the process in the guest; nothing queues up here.
        while True:
            event = await execution.next()
            if event["op"] == "output":
                out = p.OutputEvent(exec=execution.id, stream=event["stream"], data=event["data"])
                await self.send(out.model_dump())
            elif event["op"] == "exit":
                done: dict[str, Any] = {k: event[k] for k in ("code", "signal") if k in event}
                await self.send({"event": "exit", "exec": execution.id, **done})
                self.executions.pop(execution.id, None)
                return

    async def watch(self, sup: Supervisor) -> None:
        """Held requests and sync holds, while this client is here."""
        with sup.approvals.watch() as queue:
            sup.sync_watchers.add(queue)
            try:
                while True:
                    await self.send(await queue.get())
            finally:
                sup.sync_watchers.discard(queue)

    async def close(self) -> None:
        # No one reads this output any more: unacknowledged, it pauses in the guest.
        for task in self._children:
            task.cancel()
        for execution in list(self.executions.values()):  # the client left: end its execs
            with contextlib.suppress(Exception):
                await execution.signal(signal.SIGHUP)
        self.writer.close()


async def _quiet(coro: Coroutine[Any, Any, None], name: str) -> None:
    try:
        await coro
    except (ConnectionError, SandkitError) as exc:  # the client or the guest went away
        log.info("%s ended: %s", name, exc)
    except Exception:
        log.exception("%s failed", name)


async def serve_connection(
    sup: Supervisor, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    async with asyncio.TaskGroup() as tasks:
        conn = Connection(writer, tasks)
        try:
            while line := await reader.readline():
                reply = await dispatch(sup, conn, line)
                await conn.send(reply)
                for step in conn.after_reply:
                    step()
                conn.after_reply.clear()
        except (ConnectionError, ValueError):  # gone, or a line over the limit
            pass
        finally:
            sup.sessions.detach_all(conn)  # a session outlives its clients
            await conn.close()


async def dispatch(sup: Supervisor, conn: Connection, line: bytes) -> dict[str, Any]:
    """One request line to its reply: the result, or an error with its code."""
    rid: object = None
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ControlError(ErrorCode.BAD_REQUEST, "a request is a JSON object")
        rid, method = request.get("id"), request.get("method")
        route = ROUTES.get(method) if isinstance(method, str) else None
        if route is None:
            raise ControlError(ErrorCode.UNKNOWN_METHOD, f"unknown method '{method}'")
        params = route.params.model_validate(request.get("params") or {})
        result = await route.handler(sup, conn, params)
    except ValidationError as exc:
        return p.error_reply(rid, ErrorCode.BAD_REQUEST, _invalid(exc))
    except ValueError as exc:
        return p.error_reply(rid, ErrorCode.BAD_REQUEST, f"not a JSON request: {exc}")
    except ControlError as exc:
        return p.error_reply(rid, exc.code, exc.message)
    except StateError as exc:
        return p.error_reply(rid, ErrorCode.WRONG_STATE, str(exc))
    except SandkitError as exc:
        return p.error_reply(rid, ErrorCode.FAILED, str(exc))
    except Exception as exc:
        log.exception("control request failed")
        return p.error_reply(rid, ErrorCode.INTERNAL, f"internal error: {exc!r}")
    return p.reply(rid, result)


def _invalid(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(x) for x in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
    ]
    return "bad params: " + "; ".join(problems)


# -- the handler table ---------------------------------------------------------------------------
Handler = Callable[["Supervisor", Connection, Any], Awaitable[p.Result]]
H = TypeVar("H", bound=Callable[..., Awaitable[p.Result]])


@dataclass(frozen=True)
class Route:
    params: type[p.Params]
    handler: Handler


ROUTES: dict[str, Route] = {}


def handles(*methods: str) -> Callable[[H], H]:
    """Register a handler for methods whose params model (protocol.METHODS) it takes."""

    def register(handler: H) -> H:
        for method in methods:
            ROUTES[method] = Route(p.METHODS[method][0], handler)
        return handler

    return register


@handles("ping")
async def ping(sup: Supervisor, conn: Connection, params: p.Empty) -> p.PingResult:
    return p.PingResult(**sup.identity.model_dump(), pid=os.getpid())


@handles("status")
async def status(sup: Supervisor, conn: Connection, params: p.Empty) -> p.StatusResult:
    s = sup.state
    return p.StatusResult(
        **sup.identity.model_dump(), state=s.state, qemu_pid=s.qemu_pid, sync=s.sync, error=s.error
    )


@handles("stop")
async def stop(sup: Supervisor, conn: Connection, params: p.Empty) -> p.EmptyResult:
    sup.request_stop()  # goes on after the reply
    return p.EmptyResult()


@handles("watch")
async def watch(sup: Supervisor, conn: Connection, params: p.Empty) -> p.EmptyResult:
    if not conn.watching:
        conn.watching = True
        conn.spawn(conn.watch(sup), "watch-approvals")
    return p.EmptyResult()


@handles("pending")
async def pending(sup: Supervisor, conn: Connection, params: p.Empty) -> p.PendingResult:
    held = [p.HeldRequest(**h.describe()) for h in sup.approvals.held.values()]
    return p.PendingResult(held=held)


@handles("approve")
async def approve(sup: Supervisor, conn: Connection, params: p.AnswerParams) -> p.AnswerResult:
    return approvals.answer(sup, params.host, Action.ALLOW, params.remember)


@handles("deny")
async def deny(sup: Supervisor, conn: Connection, params: p.AnswerParams) -> p.AnswerResult:
    return approvals.answer(sup, params.host, Action.DENY, params.remember)


@handles("adopt")
async def adopt_member(sup: Supervisor, conn: Connection, params: p.AdoptParams) -> p.AdoptResult:
    return await adopt.adopt(sup, params)


@handles("agent-argv")
@require(RUNNING)
async def agent_argv(
    sup: Supervisor, conn: Connection, params: p.AgentArgvParams
) -> p.AgentArgvResult:
    """`run AGENT -- ARGS` (or a session verb: `run --prompt TEXT`), from the kits this
    sandbox runs. A verb the kit does not declare fails, with the kit's name."""
    from sandkit.kits.agent_sessions import Verb
    from sandkit.sandbox.agent_command import SessionRequest, agent_argv

    if sup.resolution is None:
        raise ControlError(ErrorCode.WRONG_STATE, "the sandbox is not running")
    session = None
    if params.verb is not None:
        session = SessionRequest(Verb(params.verb), params.prompt, params.session_id)
    argv = agent_argv(sup.resolution.sandbox, params.extra, params.interactive, session)
    return p.AgentArgvResult(argv=argv)


# -- the workspace's sync (in any live state: holds can come while the kits install) ----------
def _sync(sup: Supervisor) -> Any:
    if sup.sync is None:
        raise ControlError(ErrorCode.NOT_FOUND, "this sandbox has no workspace to sync")
    return sup.sync


@handles("sync-status")
async def sync_status(sup: Supervisor, conn: Connection, params: p.Empty) -> p.SyncStatusResult:
    sync = _sync(sup)
    return p.SyncStatusResult(
        status=sync.status,
        held=sorted(sync.pending),
        details=[p.HeldPath(**d) for d in sync.held()],
        refused_links=dict(sync.refused),
        conflicts=list(sync.conflicts),
    )


async def _sync_decide(sup: Supervisor, approve: bool) -> p.CountResult:
    sync = _sync(sup)
    await workspace.hand_back(sup, sorted(sync.pending))
    count = await asyncio.to_thread(sync.approve if approve else sync.reject)
    sup.save(sync=sync.status)
    return p.CountResult(count=count)


@handles("sync-approve")
async def sync_approve(sup: Supervisor, conn: Connection, params: p.Empty) -> p.CountResult:
    return await _sync_decide(sup, True)


@handles("sync-reject")
async def sync_reject(sup: Supervisor, conn: Connection, params: p.Empty) -> p.CountResult:
    return await _sync_decide(sup, False)


# -- the guest ------------------------------------------------------------------------------------
def channel_of(sup: Supervisor) -> GuestChannel:
    machine = sup.machine
    if machine is None or machine.channel is None:
        raise ControlError(ErrorCode.WRONG_STATE, "the sandbox is not running")
    return machine.channel


@handles("guest-ping")
@require(RUNNING)
async def guest_ping(sup: Supervisor, conn: Connection, params: p.Empty) -> p.EmptyResult:
    """A round trip through the guest agent's channel."""
    await channel_of(sup).ping()
    return p.EmptyResult()


@handles("dump-memory")
@require(RUNNING)
async def dump_memory(sup: Supervisor, conn: Connection, params: p.Empty) -> p.DumpMemoryResult:
    """For audits: is a secret anywhere in the guest's RAM?"""
    channel_of(sup)
    assert sup.machine is not None and sup.machine.qmp is not None
    target = sup.sandbox.dir / "memory.dump"
    await sup.machine.qmp.execute(
        "dump-guest-memory", {"paging": False, "protocol": f"file:{target}"}
    )
    return p.DumpMemoryResult(path=str(target))


@handles("credentials-changed")
async def credentials_changed(
    sup: Supervisor, conn: Connection, params: p.CredentialsChangedParams
) -> p.CredentialsChangedResult:
    """`secret set|rm` or a client's host variables: the running proxy takes the new
    values at once; the guest's placeholders stay."""
    from sandkit.sandbox.supervisor import egress

    if params.environ is not None:
        egress.set_host_environ(sup, params.environ)
    return p.CredentialsChangedResult(services=await egress.refresh_credentials(sup))


@handles("exec")
@require(RUNNING)
async def exec_(sup: Supervisor, conn: Connection, params: p.ExecParams) -> p.ExecResult:
    execution: Execution = await channel_of(sup).exec(
        params.argv,
        env={**sup.guest_env, **params.env},
        cwd=params.cwd,
        user=params.user,
        pty=params.pty,
        rows=params.rows,
        cols=params.cols,
        stdin=params.stdin,
    )
    conn.executions[execution.id] = execution
    # Output is forwarded once the reply that names the exec has gone out.
    conn.after_reply.append(lambda: conn.spawn(conn.forward(execution), f"forward-{execution.id}"))
    return p.ExecResult(exec=execution.id)


def _execution(conn: Connection, exec_id: int) -> Execution:
    execution = conn.executions.get(exec_id)
    if execution is None:
        raise ControlError(ErrorCode.NOT_FOUND, f"no running exec {exec_id}")
    return execution


@handles("stdin")
@require(RUNNING)
async def stdin(sup: Supervisor, conn: Connection, params: p.StdinParams) -> p.EmptyResult:
    await _execution(conn, params.exec).stdin(params.raw(), params.eof)
    return p.EmptyResult()


@handles("resize")
@require(RUNNING)
async def resize(sup: Supervisor, conn: Connection, params: p.ResizeParams) -> p.EmptyResult:
    await _execution(conn, params.exec).resize(params.rows, params.cols)
    return p.EmptyResult()


@handles("signal")
@require(RUNNING)
async def signal_(sup: Supervisor, conn: Connection, params: p.SignalParams) -> p.EmptyResult:
    await _execution(conn, params.exec).signal(params.signal)
    return p.EmptyResult()


# The session and port handlers live in their own module.
for _method, _handler in sessioncontrol.HANDLERS.items():
    handles(_method)(_handler)

# Every method of the protocol has its handler (checked at import: a new method needs both).
assert set(ROUTES) == set(p.METHODS), set(ROUTES) ^ set(p.METHODS)
