"""Create, start, stop, reset and remove sandboxes: the steps the CLI and the editor share
(the warm pool that new sandboxes are adopted from is `pool.py`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.errors import SandkitError
from sandkit.guestuser import AGENT_UID
from sandkit.hostconfig import registry_args
from sandkit.logs import logger
from sandkit.pids import alive
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import POOL_PREFIX, Config, Sandbox, SandboxError, State, Store

# asyncio, the client (pydantic) and the image code load with the first call that needs
# them: `run` imports this module (request.py) before it sends a warm-pool member its
# adoption, and those imports then overlap the adoption (sandbox/warm.py).
if TYPE_CHECKING:
    from sandkit.sandbox.client import SupervisorClient
    from sandkit.vm.image import Progress

log = logger(__name__)
S = SandboxState
BOOT_TIMEOUT = 900.0  # installs (npm, apt) run before a sandbox counts as started


def create(store: Store, config: Config, workspace: Path | None) -> Sandbox:
    """Check the kits, then make the sandbox's directory; the supervisor fills the share
    from the workspace (and keeps both in sync) when the sandbox starts."""
    config.arg_defaults = dict(registry_args())
    from sandkit.kits import resolve  # the models load only when a sandbox is created

    resolve(config.agent, config.kits, config.kit_args, defaults=config.arg_defaults)  # fail early
    if workspace is not None and not workspace.is_dir():
        raise SandboxError(f"{workspace} is not a directory")
    sandbox = store.new(config)
    try:
        sandbox.share.mkdir()
        _give_to_agent(sandbox.share)
        sandbox.save_config(config)
        sandbox.save_state(State())
    except BaseException:
        store.remove(sandbox)  # no half-made sandbox
        raise
    return sandbox


def _give_to_agent(root: Path) -> None:
    """The share is sandkit's own copy: make it the guest agent's (uid 1000), as the files
    of the workspace are the user's. Only root can; others keep their own uid (sync
    writes into the share as the same owner)."""
    if os.geteuid() == 0:
        os.lchown(root, AGENT_UID, AGENT_UID)


async def start(
    sandbox: Sandbox, progress: Progress | None = None, waiting: Callable[[str], None] | None = None
) -> State:
    """Boot the sandbox (its supervisor) unless it runs already; wait until it answers."""
    state = sandbox.state()
    if state.state in (S.RUNNING, S.POOLED) and alive(state.supervisor_pid):
        return state
    if state.state in (S.BOOTING, S.ADOPTING, S.STOPPING) and alive(state.supervisor_pid):
        return await _wait(sandbox, waiting)
    _kill_leftovers(state)  # a crashed sandbox may have left QEMU or virtiofsd running
    _kill_orphans(sandbox)
    # What the host must allow (user namespaces, subordinate ids) is checked before the
    # image build or the golden snapshot, which take minutes.
    import asyncio

    from sandkit.vm import hostcheck
    from sandkit.vm.image import ensure_image

    config = sandbox.config()
    hostcheck.check_shape(config.cpus, config.memory_mib)
    hostcheck.require()
    # Built here, with visible progress; the supervisor is told where it is.
    image = await asyncio.to_thread(ensure_image, progress)
    log = (sandbox.dir / "supervisor.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandkit.sandbox.supervisor", sandbox.name, str(image.path)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
    )
    log.close()
    # Recorded now, so that a supervisor that dies before writing its state shows as crashed.
    sandbox.save_state(State(state=S.BOOTING, supervisor_pid=proc.pid, started=time.time()))
    return await _wait(sandbox, waiting)


async def _wait(sandbox: Sandbox, waiting: Callable[[str], None] | None) -> State:
    import asyncio

    deadline = time.monotonic() + BOOT_TIMEOUT
    await asyncio.sleep(0.05)
    while time.monotonic() < deadline:
        if not sandbox.dir.exists():  # removed (rm -f, pool drain) while it was starting
            raise SandboxError(f"sandbox '{sandbox.name}' was removed while it started")
        state = sandbox.state()
        if state.state in (S.RUNNING, S.POOLED):
            return state
        if state.state in (S.CRASHED, S.STOPPED):
            raise SandboxError(
                f"sandbox '{sandbox.name}' did not start: {state.error or state.state}"
            )
        if waiting is not None:
            waiting(state.state)
        await asyncio.sleep(0.03)
    raise SandboxError(
        f"sandbox '{sandbox.name}' did not start within {BOOT_TIMEOUT:.0f} s; "
        f"see {sandbox.dir / 'console.log'}"
    )


async def connect(sandbox: Sandbox) -> SupervisorClient:
    from sandkit.sandbox.client import SupervisorClient

    return await SupervisorClient.connect(sandbox.control)


async def stop(sandbox: Sandbox, timeout: float = 30.0) -> None:
    state = sandbox.state()
    if not alive(state.supervisor_pid):
        _kill_leftovers(state)
        if state.state not in (S.CREATED, S.CRASHED):
            state.state = S.STOPPED
        sandbox.save_state(state)
        return
    with contextlib.suppress(SandboxError, ConnectionError):
        async with await connect(sandbox) as client:
            await client.stop()
    import asyncio

    deadline = time.monotonic() + timeout
    while alive(state.supervisor_pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if alive(state.supervisor_pid):
        _kill_leftovers(state)


def _kill_leftovers(state: State) -> None:
    for pid in (state.supervisor_pid, state.qemu_pid):
        if alive(pid):
            assert pid is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


async def remove(store: Store, sandbox: Sandbox, force: bool = False) -> None:
    if not sandbox.dir.exists():  # e.g. a pool member adopted meanwhile: it is not ours
        return
    state = sandbox.state()
    if force:
        _kill_leftovers(state)
    else:
        await stop(sandbox)
    _kill_leftovers(sandbox.state())
    _kill_orphans(sandbox)
    store.remove(sandbox)
    forget_credentials(sandbox.name)


def forget_credentials(name: str) -> None:
    """A removed sandbox's own secrets, OAuth sign-in and sentinels go with it: a new
    sandbox of the same name starts from the global ones."""
    from sandkit.net.secrets import SecretStore
    from sandkit.net.tokens import TokenStore

    try:
        SecretStore(sandbox=name).path.unlink(missing_ok=True)
        TokenStore().forget_sandbox(name)
    except (OSError, SandkitError) as exc:
        log.warning("the credentials of %s were not all removed: %s", name, exc)


# The guest's own disk: the qcow2 overlay over the image (its absence is what makes the
# next start a first start: a fresh clone of the golden snapshot, or a fresh overlay),
# and a golden clone's device state, should a start have died before using it.
GUEST_DISK = ("disk.qcow2", "golden-state.bin")


async def reset(
    sandbox: Sandbox, progress: Progress | None = None, waiting: Callable[[str], None] | None = None
) -> bool:
    """Replace the guest's disk with a fresh one from the image, as if the sandbox were
    new: stopped first, started again if it was running (the kits are applied again, their
    once-per-sandbox steps too: their markers were on the old disk). The workspace, the
    share and its sync journal, config.json (published ports), approvals, the proxy's CA
    and the logs are kept. Returns whether it was started again."""
    if is_pool_member(sandbox):
        raise SandboxError(f"'{sandbox.name}' is a warm-pool member: `sandkit pool drain` it")
    state = sandbox.state()
    was_running = state.state.live and alive(state.supervisor_pid)
    await stop(sandbox)
    state = sandbox.state()
    if alive(state.supervisor_pid) or alive(state.qemu_pid):
        raise SandboxError(f"sandbox '{sandbox.name}' did not stop; its disk is left as it was")
    _kill_orphans(sandbox)  # nothing may still write the old disk
    for name in GUEST_DISK:
        (sandbox.dir / name).unlink(missing_ok=True)
    log.info("reset %s: the guest disk is new", sandbox.name)
    if was_running:
        await start(sandbox, progress, waiting)
    return was_running


def _kill_orphans(sandbox: Sandbox) -> None:
    """Processes left by a supervisor that died without saying their pids: QEMU (its disk is
    in the sandbox's folder) and virtiofsd (its socket is). They run in their own sessions."""
    needles = [f"{sandbox.dir}/".encode(), str(sandbox.sockets / "share.sock").encode()]
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            cmdline = (proc / "cmdline").read_bytes()
            if int(proc.name) != os.getpid() and any(n in cmdline for n in needles):
                name = cmdline.split(b"\0", 1)[0].rsplit(b"/", 1)[-1]
                if name in (b"qemu-system-x86_64", b"virtiofsd"):
                    os.kill(int(proc.name), signal.SIGKILL)


def is_pool_member(sandbox: Sandbox) -> bool:
    return sandbox.name.startswith(POOL_PREFIX)


async def credentials_changed(sandboxes: list[Sandbox]) -> list[str]:
    """`secret set|rm`: each running sandbox's proxy reads its credentials again. The
    names of the sandboxes that could not be told."""
    missed = []
    for sandbox in sandboxes:
        state = sandbox.state()
        if state.state is not S.RUNNING or not alive(state.supervisor_pid):
            continue
        try:
            async with await connect(sandbox) as client:
                await client.credentials_changed()
        except (SandkitError, OSError):
            missed.append(sandbox.name)
    return missed
