"""The supervisor's process: its state machine, its tasks (one TaskGroup), and the one way
every life ends: a stop call, a signal, the VM's death, a failed boot or adoption all
set the ending; ``run`` then cleans up once, in its ``finally``, and records the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sandkit.errors import SandkitError
from sandkit.logs import logger
from sandkit.net.actions import Action
from sandkit.net.approvals import ApprovalBroker
from sandkit.sandbox.protocol import Identity
from sandkit.sandbox.state import SandboxState, check_transition
from sandkit.sandbox.store import Config, Sandbox, State
from sandkit.vm.machine import Machine, tail

if TYPE_CHECKING:
    from sandkit.kits.resolution import Resolution
    from sandkit.net.proxy import EgressProxy, ProxySettings
    from sandkit.sync.engine import SyncEngine

log = logger("sandkit.supervisor")
T = TypeVar("T")
S = SandboxState
# Builds the VM: vm.machine.Machine, or a test double with its interface.
MachineFactory = Callable[..., Machine]
SYNC_GRACE = 10.0  # seconds the sync watcher gets to finish its batch at the end


@dataclass(frozen=True)
class Ending:
    state: SandboxState  # STOPPED or CRASHED
    error: str | None = None


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, SandkitError):
        return str(exc)
    return f"internal error: {exc!r}"


class Supervisor:
    def __init__(
        self,
        sandbox: Sandbox,
        image_path: Path | None = None,
        *,
        machine_factory: MachineFactory = Machine,
    ) -> None:
        self.sandbox = sandbox
        self.image_path = image_path
        self.machine_factory = machine_factory
        self.config: Config = sandbox.config()
        self.identity = Identity.local()
        self._thread = threading.get_ident()  # state.json is written from this thread only
        self.state = State(
            state=S.BOOTING,
            supervisor_pid=os.getpid(),
            started=time.time(),
            **self.identity.model_dump(),
        )
        self.sandbox.save_state(self.state)
        self.machine: Machine | None = None
        self.sync: SyncEngine | None = None
        self.sync_loop: asyncio.AbstractEventLoop | None = None
        self.sync_watchers: set[asyncio.Queue[dict[str, Any]]] = set()  # attached clients
        self.sync_stop = asyncio.Event()
        self.sync_task: asyncio.Task[None] | None = None
        self.guest_env: dict[str, str] = {}
        self.resolution: Resolution | None = None
        self.ca_pem = b""
        self.trusted_pem: bytes | None = None  # what trust_ca installed in this guest
        self.proxy: EgressProxy | None = None
        self.approvals = ApprovalBroker()
        from sandkit.sandbox.supervisor.ports import PortHost
        from sandkit.sandbox.supervisor.sessions import SessionHost

        self.sessions = SessionHost(self)
        self.ports = PortHost(self)
        self.servers: list[asyncio.Server] = []
        self.stopping = False
        self.cleanups = 0  # how many times cleanup ran: once, whatever the ending
        self._tasks: asyncio.TaskGroup | None = None
        self._children: set[asyncio.Task[Any]] = set()
        self._boot: asyncio.Task[None] | None = None
        self.launching: asyncio.Task[BaseException | None] | None = None  # the VM's launch
        self._ending: asyncio.Future[Ending] | None = None
        self._stop_early = False

    # -- state ------------------------------------------------------------------------------
    @property
    def runstate(self) -> SandboxState:
        return self.state.state

    def save(self, **changes: Any) -> None:
        """Write state.json. Only the event loop's thread does (the sync thread hands its
        news over with call_soon_threadsafe): two writers could undo each other."""
        if threading.get_ident() != self._thread:
            raise RuntimeError("state.json is written from the event loop's thread only")
        for key, value in changes.items():
            setattr(self.state, key, value)
        self.sandbox.save_state(self.state)

    def move(self, new: SandboxState, **changes: Any) -> None:
        check_transition(self.runstate, new)
        self.save(state=new, **changes)

    # -- tasks ------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T | None]:
        """A background task of this supervisor: in its TaskGroup, cancelled at the end. A
        failure is logged, not allowed to take the whole group (and the sandbox) down."""
        if self._tasks is None:
            coro.close()
            raise RuntimeError("the supervisor is not running")
        task = self._tasks.create_task(_logged(coro, name), name=name)
        self._children.add(task)
        task.add_done_callback(self._children.discard)
        return task

    def attempt(
        self, coro: Coroutine[Any, Any, object], name: str
    ) -> asyncio.Task[BaseException | None]:
        """A task in the group whose failure is its result, for the caller to raise."""
        if self._tasks is None:
            coro.close()
            raise RuntimeError("the supervisor is not running")
        task = self._tasks.create_task(_outcome(coro), name=name)
        self._children.add(task)
        task.add_done_callback(self._children.discard)
        return task

    def end(self, ending: Ending) -> None:
        """The first ending wins; run() takes it from here."""
        if self._ending is not None and not self._ending.done():
            self._ending.set_result(ending)

    # -- the life ---------------------------------------------------------------------------
    async def run(self) -> int:
        from sandkit.sandbox.supervisor.boot import boot_and_serve

        ending = Ending(S.CRASHED, "the supervisor ended unexpectedly")
        self._ending = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                try:
                    await self.listen(self.sandbox.control)
                    if self._stop_early:
                        self.request_stop()
                    else:
                        self._boot = tasks.create_task(boot_and_serve(self), name="boot")
                    ending = await self._ending
                finally:
                    if self._boot is not None:  # a boot cut short: its launch too
                        self._boot.cancel()
                    if self.launching is not None:
                        self.launching.cancel()
                    await self.cleanup()
                    for task in [*self._children, *([self._boot] if self._boot else [])]:
                        task.cancel()
        except Exception as exc:  # a bug in the supervisor: still cleaned up and recorded
            log.exception("the supervisor failed")
            ending = Ending(S.CRASHED, describe_failure(exc))
            await self.cleanup()
        finally:
            self._tasks = None
            self.finish(ending)
        return 0 if ending.state is S.STOPPED else 1

    async def listen(self, path: Path) -> None:
        from sandkit.sandbox.supervisor.control import serve_connection

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.spawn(serve_connection(self, reader, writer), "control-client")

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.unlink(missing_ok=True)  # a socket left by a supervisor that died
        self.servers.append(await asyncio.start_unix_server(accept, str(path), limit=1 << 22))

    def finish(self, ending: Ending) -> None:
        final = ending.state
        if final is S.STOPPED and self.runstate is not S.STOPPING:
            final = S.CRASHED  # a stop is always recorded as stopping first
        if final is S.CRASHED and ending.error:
            log.error("ending: %s", ending.error.splitlines()[0])
        try:
            self.move(final, qemu_pid=None, error=ending.error)
        except SandkitError:  # a bug in the moves: the end is recorded all the same
            log.exception("recording the end")
            self.save(state=final, qemu_pid=None, error=ending.error)

    async def watch_vm(self) -> None:
        """The VM's death while nobody stops it ends the sandbox, as crashed."""
        assert self.machine is not None
        code = await self.machine.wait()
        if not self.stopping:
            console = tail(self.machine.paths.console)
            self.end(
                Ending(
                    S.CRASHED,
                    f"QEMU exited unexpectedly (status {code})\n--- guest console (last lines) ---\n{console}",
                )
            )

    async def serve_ports(self) -> None:
        """Once running: the saved and the kits' forwards, then the guest's listeners."""
        kit_ports = (
            [x.container for x in self.resolution.sandbox.ports if x.protocol == "tcp"]
            if self.resolution is not None
            else []
        )
        await self.ports.restore(kit_ports)
        await self.ports.watch_listeners()

    def request_stop(self) -> None:
        """From a signal handler or the stop method: the stop runs as a task."""
        if self._tasks is None:
            self._stop_early = True  # before run(): it ends without booting
            if self._ending is not None:
                self.end(Ending(S.STOPPED))
            return
        self.spawn(self.stop(), "stop")

    async def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        was = self.runstate
        self.move(S.STOPPING)
        boot = self._boot
        if boot is not None and not boot.done():  # stopped while it boots: no VM to wait for
            boot.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await boot
        elif self.machine is not None:
            if was is S.POOLED:  # paused, nothing in it to lose: no graceful shutdown
                await self.machine.kill()
            else:
                await self.machine.shutdown()
        self.end(Ending(S.STOPPED))

    async def cleanup(self) -> None:
        """Everything the supervisor started, released: once, on every ending."""
        if self.cleanups:
            return
        self.cleanups += 1
        self.stopping = True
        for server in self.servers:
            server.close()
        self.sandbox.control.unlink(missing_ok=True)
        await self.stop_sync()
        if self.machine is not None:
            await self.machine.kill()
        from sandkit.sandbox.supervisor.egress import close_proxy

        await close_proxy(self)
        self.remove_runtime_sockets()

    def remove_runtime_sockets(self) -> None:
        """A socket folder in /tmp/sandkit-UID (a state folder too deep for socket paths)
        holds nothing once this process ends; a pool member's stays where it was made
        when the member is adopted and renamed. Left there, each would stay for good."""
        from sandkit.paths import runtime_dir

        runtime = runtime_dir()
        folders = {self.sandbox.sockets}
        if self.machine is not None:
            folders.add(self.machine.paths.sockets)
        for folder in folders:
            if folder.parent == runtime:
                shutil.rmtree(folder, ignore_errors=True)

    async def stop_sync(self) -> None:
        if self.sync is None:
            return
        self.sync_stop.set()
        if self.sync_task is not None:  # let the watcher finish its batch
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SYNC_GRACE):
                    await self.sync_task
        self.sync.close()
        self.sync = None

    # -- what other modules and older tests call on the supervisor ------------------------------
    @property
    def proxy_socket(self) -> Path:
        """The proxy's Unix socket, in a private folder: only the owner's processes (the
        VM's forward) can connect; no other local user can use the sandbox's credentials."""
        return self.sandbox.sockets / "egress" / "proxy.sock"

    async def proxy_settings(self, resolution: Resolution | None = None) -> ProxySettings:
        from sandkit.sandbox.supervisor.guest import proxy_settings

        return await proxy_settings(self, resolution)

    def load_approvals(self) -> dict[str, str]:
        from sandkit.sandbox.supervisor.approvals import load_approvals

        return load_approvals(self.sandbox.dir)

    def answer(self, host: str, action: Action, remember: bool) -> dict[str, Any]:
        from sandkit.sandbox.supervisor.approvals import answer

        return answer(self, host, action, remember).model_dump()


async def _logged(coro: Coroutine[Any, Any, T], name: str) -> T | None:
    try:
        return await coro
    except Exception:
        log.exception("task %s failed", name)
        return None


async def _outcome(coro: Coroutine[Any, Any, object]) -> BaseException | None:
    try:
        await coro
    except Exception as exc:
        return exc
    return None
