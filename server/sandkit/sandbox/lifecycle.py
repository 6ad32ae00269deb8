"""Create, start, stop and remove sandboxes: the steps the CLI and the editor share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from sandkit.errors import SandkitError
from sandkit.hostconfig import registry_args
from sandkit.pids import alive
from sandkit.sandbox.client import SupervisorClient, SupervisorError
from sandkit.sandbox.protocol import ErrorCode, Identity
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import (
    Config,
    Profile,
    Sandbox,
    SandboxError,
    State,
    Store,
    profile,
    profile_of,
)
from sandkit.vm import hostcheck
from sandkit.vm.image import Progress, ensure_image

__all__ = ["Profile", "profile", "profile_of"]  # kept here for their older callers
log = logging.getLogger(__name__)
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


AGENT_UID = 1000


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


# -- the warm pool ------------------------------------------------------------------------------
POOL_PREFIX = "pool-"


def pool_size() -> int:
    """Members kept ready per machine shape: $SANDKIT_POOL_SIZE (default 1; 0 turns the
    pool off)."""
    try:
        return max(int(os.environ.get("SANDKIT_POOL_SIZE", "1")), 0)
    except ValueError:
        raise SandboxError(
            "SANDKIT_POOL_SIZE must be a whole number (0 turns the pool off)"
        ) from None


def shape(cpus: int, memory_mib: int) -> str:
    return f"{cpus}c{memory_mib}m"


def pool_members(store: Store) -> list[Sandbox]:
    return [s for s in store.all() if s.name.startswith(POOL_PREFIX)]


def is_pool_member(sandbox: Sandbox) -> bool:
    return sandbox.name.startswith(POOL_PREFIX)


async def adopt(store: Store, config: Config) -> Sandbox | None:
    """Claim a paused pool member of the config's shape and make it this sandbox: one
    prepared for the same agent and kits first, else a plain one; None when none is ready
    or the adoption fails in any way (the caller boots one cold). A member whose
    supervisor runs another sandkit (version, protocol, installation) is never adopted:
    it is drained, and the pool refilled with this sandkit's."""
    if not config.host_cas:  # members already trust the host's CAs: boot this one cold
        return None
    mine = Identity.local()
    drained = 0
    try:
        for member in _candidates(store, config):
            state = member.state()
            if state.state is not S.POOLED or not alive(state.supervisor_pid):
                continue
            if not same_kind(state, mine):
                log.info("draining pool member %s: %s", member.name, kind_of(state))
                await remove(store, member, force=True)
                drained += 1
                continue
            outcome = await _claim(store, member, config, mine)
            if isinstance(outcome, Sandbox):
                return outcome
            if outcome is not _TAKEN:  # failed: cold, and the pool topped up again
                drained += 1
                return None
        return None
    finally:
        if drained:
            _spawn_fill(config, prepared=False)


def same_kind(state: State, mine: Identity) -> bool:
    """Whether the supervisor that wrote ``state`` runs this sandkit."""
    if state.sandkit is None or state.protocol is None or state.prefix is None:
        return False  # written by a sandkit that did not say (PROTOCOL 1)
    theirs = Identity(
        sandkit=state.sandkit,
        protocol=state.protocol,
        executable=state.executable or "",
        prefix=state.prefix,
    )
    return theirs.same_as(mine)


def kind_of(state: State) -> str:
    """For `sandkit ls` and logs: the sandkit a sandbox's supervisor runs."""
    if state.sandkit is None:
        return "an older sandkit"
    return f"sandkit {state.sandkit} (protocol {state.protocol}) in {state.prefix}"


def other_sandkit(state: State, mine: Identity) -> str:
    """For `sandkit ls`: "" when the sandbox's supervisor runs this sandkit (or none
    runs), else what it runs: "older" (it did not say), a version, and the installation
    or protocol that differs."""
    if not (state.state.live and alive(state.supervisor_pid)) or same_kind(state, mine):
        return ""
    if state.sandkit is None:
        return "older"
    if state.prefix != mine.prefix:
        return f"{state.sandkit} (other install: {state.prefix})"
    return f"{state.sandkit} (protocol {state.protocol})"


def _candidates(store: Store, config: Config) -> list[Sandbox]:
    """Members of the config's shape: prepared for its agent and kits first, then plain."""
    wanted = shape(config.cpus, config.memory_mib)
    candidates = []
    for member in pool_members(store):
        try:
            member_config = member.config()
        except SandboxError:
            continue
        if member_config.pool_shape != wanted:
            continue
        if not member_config.pool_prepared:
            candidates.append((1, member))
        elif profile(member_config) == profile(config):
            candidates.append((0, member))
    return [member for _, member in sorted(candidates, key=lambda c: c[0])]


_TAKEN = object()  # another client adopted the member first: try the next


async def _claim(store: Store, member: Sandbox, config: Config, mine: Identity) -> object:
    """Ask the member to become this sandbox: the Sandbox, _TAKEN, or None after any
    failure (a member left in doubt is drained; a half-adopted sandbox is removed)."""
    from dataclasses import asdict

    try:
        async with await SupervisorClient.connect(member.control) as client:
            await client.adopt(config.name, asdict(config), identity=mine)
        return Sandbox(store.root, config.name)
    except SupervisorError as exc:
        if exc.code is ErrorCode.MEMBER_TAKEN:
            return _TAKEN
        failure: Exception = exc
    except Exception as exc:  # whatever it is, the user's sandbox starts cold
        failure = exc
    log.warning("adopting pool member %s failed (%s); starting cold", member.name, failure)
    # Refused before anything changed (the user's kits have an error): it stays pooled.
    refused = isinstance(failure, SupervisorError) and failure.code in REFUSALS
    await _clean_after_failure(store, member, config, keep_member=refused)
    return None


REFUSALS = (ErrorCode.FAILED, ErrorCode.BAD_REQUEST)


async def _clean_after_failure(
    store: Store, member: Sandbox, config: Config, keep_member: bool
) -> None:
    half = Sandbox(store.root, config.name)
    if half.exists() and half.state().adopted_from == member.name:
        await remove(store, half, force=True)  # renamed, then failed: not the user's yet
    if member.exists():
        state = member.state()
        if not (keep_member and state.state is S.POOLED):
            await remove(store, member, force=True)  # in doubt: drained, refilled later


async def create_or_adopt(
    store: Store, config: Config, workspace: Path | None
) -> tuple[Sandbox, bool]:
    """A new sandbox: adopted from the warm pool when a member is ready, else created (and
    booted later, cold). Either way the kits are checked first."""
    config.arg_defaults = dict(registry_args())
    if workspace is not None and not workspace.is_dir():
        raise SandboxError(f"{workspace} is not a directory")
    if Sandbox(store.root, config.name).exists():
        raise SandboxError(f"a sandbox named '{config.name}' exists already")
    if pool_size() > 0:  # the member's supervisor checks the kits before it says yes
        adopted = await adopt(store, config)
        if adopted is not None:
            await hand_over_environ(adopted, config)
            return adopted, True
    return create(store, config, workspace), False


def credential_environ(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host variables the config's kits name for credentials, as this client sees
    them (whether the proxy may read one is still the user's grant, checked there)."""
    from sandkit.kits import resolve

    env = os.environ if environ is None else environ
    resolution = resolve(config.agent, config.kits, config.kit_args, defaults=config.arg_defaults)
    names: set[str] = set()
    for cred in resolution.sandbox.credentials:
        names.update([cred.env] if cred.env else [])
        names.update(cred.sources.env if cred.sources else ())
    return {name: env[name] for name in sorted(names) if name in env}


async def hand_over_environ(sandbox: Sandbox, config: Config) -> None:
    """An adopted member's supervisor was started with another environment: give it this
    client's host variables for the kits' credentials, over its 0600 control socket (held
    in its memory only), so that adoption and a cold start inject the same."""
    try:
        environ = credential_environ(config)
        async with await connect(sandbox) as client:
            await client.credentials_changed(environ)
    except (SandkitError, OSError) as exc:
        log.warning("could not hand the host's credential variables to %s: %s", sandbox.name, exc)


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


async def fill(
    store: Store,
    cpus: int,
    memory_mib: int,
    size: int | None = None,
    prepared_for: Config | None = None,
) -> int:
    """Start members until the pool holds ``size`` of this shape (prepared for the agent and
    kits of ``prepared_for``, when given); returns how many started."""
    import secrets

    want = pool_size() if size is None else size
    wanted = shape(cpus, memory_mib)
    kind = profile(prepared_for) if prepared_for is not None else None
    for member in pool_members(store):  # a member whose supervisor died is of no use
        state = member.state()
        if state.state in (S.CRASHED, S.STOPPED) or (
            state.state is S.CREATED and not alive(state.supervisor_pid)
        ):
            await remove(store, member, force=True)
    started = 0
    while _count(store, wanted, kind) < want:  # counted each time: adoptions go on meanwhile
        # Never reuse a member's name: an adopted VM's QEMU still names its first folder.
        name = f"{POOL_PREFIX}{wanted}-{secrets.token_hex(3)}"
        config = Config(
            name=name,
            agent="shell",
            cpus=cpus,
            memory_mib=memory_mib,
            default_policy="deny-all",
            pool_shape=wanted,
        )
        if prepared_for is not None:  # installs reach what the kits allow, as in a sandbox
            config.agent, config.kits = prepared_for.agent, list(prepared_for.kits)
            config.kit_args = dict(prepared_for.kit_args)
            config.default_policy, config.pool_prepared = prepared_for.default_policy, True
        member = create(store, config, None)
        try:
            await start(member)
        except BaseException:
            await remove(store, member, force=True)  # no dead member counted as ready
            raise
        started += 1
    return started


def _count(store: Store, wanted: str, kind: Profile | None) -> int:
    count = 0
    for member in pool_members(store):
        try:
            c = member.config()
        except SandboxError:
            continue
        same = c.pool_shape == wanted and (profile(c) == kind if c.pool_prepared else kind is None)
        state = member.state()
        if same and state.state in (S.POOLED, S.BOOTING) and alive(state.supervisor_pid):
            count += 1
    return count


def refill_after(sandbox: Sandbox, config: Config) -> None:
    """Top the pool up after ``sandbox`` was made, at low priority, outliving this command:
    with a member prepared for its kits when it adopted such a member, else a plain one."""
    _spawn_fill(config, prepared=sandbox.state().adopted_prepared)


def _spawn_fill(config: Config, prepared: bool) -> None:
    if pool_size() == 0:
        return
    argv = ["nice", "-n", "10", sys.executable, "-m", "sandkit", "pool", "fill",
            "--cpus", str(config.cpus), "--memory", f"{config.memory_mib}m", "--quiet"]  # fmt: skip
    if prepared:
        argv += ["--agent", config.agent, "--default", config.default_policy]
        for kit in config.kits:
            argv += ["--kit", kit]
        for key, value in config.kit_args.items():
            argv += ["--kit-arg", f"{key}={value}"]
    log_dir = Store().root
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "pool.log").open("ab") as out:
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
