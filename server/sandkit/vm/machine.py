"""One VM's processes: virtiofsd and QEMU, QMP, the guest channel.

Launch in phases (prepare files, start virtiofsd, start QEMU, connect QMP, wait for the
guest agent); shut down gracefully (the agent powers the guest off), then with QMP
`quit`, then by killing; clean up always. Every launch error quotes the console."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from qemu.qmp import QMPClient, QMPError

from sandkit.errors import SandkitError, SetupError
from sandkit.paths import cache_dir
from sandkit.tasks import spawn
from sandkit.vm import hostcheck, qemu, userns
from sandkit.vm.channel import ChannelError, GuestChannel
from sandkit.vm.image import Image

log = logging.getLogger(__name__)
VIRTIOFSD = "/usr/lib/qemu/virtiofsd"


class VMError(SandkitError):
    """A VM would not start or stopped unexpectedly; carries the console's last lines."""

    def __init__(self, message: str, console: str = "") -> None:
        self.console = console
        text = message
        if console.strip():
            text += "\n--- guest console (last lines) ---\n" + console.rstrip()
        super().__init__(text)


@dataclass(frozen=True)
class MachinePaths:
    """Files of one machine. Sockets live in a short directory (unix paths max 107 bytes)."""

    state: Path
    sockets: Path

    @property
    def disk(self) -> Path:
        return self.state / "disk.qcow2"

    @property
    def console(self) -> Path:
        return self.state / "console.log"

    @property
    def qemu_log(self) -> Path:
        return self.state / "qemu.log"

    @property
    def qmp(self) -> Path:
        return self.sockets / "qmp.sock"

    @property
    def agent(self) -> Path:
        return self.sockets / "agent.sock"

    @property
    def share_socket(self) -> Path:
        return self.sockets / "share.sock"


def tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    if proc.returncode:
        raise VMError(f"{argv[0]} failed: {out.decode(errors='replace').strip()}")


def choose_accel(image: Image) -> str:
    """KVM only when a probe showed a guest booting under it on this machine (cached);
    SANDKIT_ACCEL=tcg|kvm overrides."""
    forced = os.environ.get("SANDKIT_ACCEL")
    if forced == "kvm" and (problem := hostcheck.kvm_problem()) is not None:
        raise SetupError(f"SANDKIT_ACCEL=kvm: {problem}")
    if forced in ("tcg", "kvm"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    probe = cache_dir() / "accel-probe.json"
    key = f"{os.uname().release}/{image.key}"
    try:
        known = json.loads(probe.read_text())
        if known.get("key") == key:
            return str(known["accel"])
    except (OSError, ValueError, KeyError):
        pass
    accel = "kvm" if _kvm_boots(image) else "tcg"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(json.dumps({"key": key, "accel": accel}))
    return accel


def _kvm_boots(image: Image, timeout: float = 8.0) -> bool:
    """Boot the kernel under KVM with no disk; a working KVM reaches the initramfs's
    'no root disk' failure (which powers off) well within the timeout."""
    argv = [
        "qemu-system-x86_64",
        "-M",
        "microvm",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "256m",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        "console=ttyS0 panic=-1 reboot=t quiet",
        "-serial",
        "stdio",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return b"sandkit-init" in done.stdout


def _socat() -> str:
    found = shutil.which("socat")
    if found is None:
        raise VMError(
            "socat is missing (it carries the guest's connections to the proxy): "
            "run scripts/setup, or install Debian's socat"
        )
    return found


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the process that started it dies."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Machine:
    def __init__(
        self,
        image: Image,
        paths: MachinePaths,
        *,
        cpus: int,
        memory_mib: int,
        share: Path | None,
        params: dict[str, str],
        proxy_socket: Path | None,
        machine: str = "microvm",
        ram_file: Path | None = None,
        restore_from: Path | None = None,
        keep_ram_file: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        """``machine="q35"`` keeps the RAM in ``ram_file`` (unlinked once restored, unless
        ``keep_ram_file``: it is to be saved) and takes the share by hotplug
        (attach_share); ``restore_from`` (a golden's migration state, q35 only) resumes a
        clone of the golden instead of booting. Each guest connection to the proxy address
        is carried to the Unix socket ``proxy_socket`` (it need not listen yet)."""
        self.image, self.paths = image, paths
        self.cpus, self.memory_mib = cpus, memory_mib
        self.share, self.params, self.proxy_socket = share, params, proxy_socket
        self.machine, self.ram_file, self.restore_from = machine, ram_file, restore_from
        self.keep_ram_file = keep_ram_file
        # A VM no state file names (a golden being built) must not outlive its process.
        self.die_with_parent = die_with_parent
        self.qemu: asyncio.subprocess.Process | None = None
        self.virtiofsd: asyncio.subprocess.Process | None = None
        self.qmp: QMPClient | None = None
        self.channel: GuestChannel | None = None
        self.accel = "tcg"

    # -- launch ---------------------------------------------------------------------------
    async def launch(self, timeout: float = 120.0) -> None:
        try:
            await self._prepare()
            await self._start_virtiofsd()
            await self._start_qemu()
            await self._connect(timeout)
        except BaseException as exc:
            console = tail(self.paths.console)
            await self.kill()
            if isinstance(exc, VMError | ChannelError | QMPError | OSError):
                raise VMError(f"the VM did not start: {exc}", console) from None
            raise

    async def _prepare(self) -> None:
        self.paths.state.mkdir(parents=True, exist_ok=True)
        self.paths.sockets.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.proxy_socket is not None:  # QEMU's working folder (_start_qemu)
            self.proxy_socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for sock in (self.paths.qmp, self.paths.agent, self.paths.share_socket):
            sock.unlink(missing_ok=True)
        if not self.paths.disk.exists():  # installs persist in the overlay until rm
            await _run(
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                str(self.image.rootfs),
                "-F",
                "raw",
                str(self.paths.disk),
            )
        self.paths.console.write_bytes(b"")
        self.accel = await asyncio.to_thread(choose_accel, self.image)

    async def _start_virtiofsd(self) -> None:
        if self.share is None:
            return
        if not Path(VIRTIOFSD).exists():
            raise VMError(
                f"{VIRTIOFSD} is missing: run scripts/setup (Debian's qemu-system-common)"
            )
        # We listen and hand virtiofsd the socket (--fd): with --socket-path it first
        # writes a pid file under /var/run/virtiofsd, which only root may.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.paths.share_socket))
        listener.listen(1)
        argv = [
            VIRTIOFSD,
            f"--fd={listener.fileno()}",
            "-o",
            f"source={self.share}",
            "-o",
            "cache=auto",
            "-o",
            "timeout=0.05",  # the guest sees host edits within 50 ms (default 1 s)
            "-o",
            "xattr",
        ]
        log_path = self.paths.state / "virtiofsd.log"
        log_file = log_path.open("ab")
        start = log_file.tell()  # the log is appended to: read only this start's lines
        try:
            if os.geteuid() == 0:
                self.virtiofsd = await asyncio.create_subprocess_exec(
                    *argv,
                    stdout=log_file,
                    stderr=log_file,
                    pass_fds=(listener.fileno(),),
                    start_new_session=True,
                )
            else:
                # As anyone else: Debian 12's virtiofsd is QEMU's C one (the Rust virtiofsd,
                # which can drop privileges itself, is not packaged for bookworm). It needs
                # root's powers to switch to each guest user's ids, so it gets them inside a
                # user namespace where the guest's agent is the user and the guest's other
                # users are the user's subordinate ids (vm/userns.py). The file limit can
                # only go up to the user's hard limit there (nsexec raises the soft one).
                argv.insert(1, "--rlimit-nofile=0")
                self.virtiofsd = await userns.spawn(
                    argv, log=log_file, pass_fds=(listener.fileno(),)
                )
        finally:
            log_file.close()
            listener.close()  # virtiofsd has its own copy
        # It has started once it says it waits for QEMU (QEMU's connect would wait too,
        # but a virtiofsd that exits should be reported as its own failure).
        for _ in range(500):
            if self.virtiofsd.returncode is not None:
                break
            with log_path.open("rb") as f:
                f.seek(start)
                said = f.read(65536)
            if b"Waiting for vhost-user socket connection" in said:
                return
            await asyncio.sleep(0.01)
        raise VMError("virtiofsd did not start: " + tail(log_path, 5))

    def spec(self) -> qemu.MachineSpec:
        proxy = None
        if self.proxy_socket is not None:
            # The socket is named relative to QEMU's working folder (see _start_qemu).
            proxy = qemu.proxy_command(self.proxy_socket.name, _socat())
        return qemu.MachineSpec(
            kernel=self.image.kernel,
            initrd=self.image.initrd,
            disk=self.paths.disk,
            console_log=self.paths.console,
            qmp_socket=self.paths.qmp,
            agent_socket=self.paths.agent,
            cpus=self.cpus,
            memory_mib=self.memory_mib,
            accel=self.accel,
            share_socket=(
                self.paths.share_socket
                if self.share is not None and self.machine == "microvm"
                else None
            ),
            proxy_command=proxy,
            kernel_params=self.params,
            machine=self.machine,
            ram_file=self.ram_file,
            incoming=self.restore_from is not None,
        )

    async def _start_qemu(self) -> None:
        argv = qemu.argv(self.spec())
        log_file = self.paths.qemu_log.open("ab")
        self.qemu = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            # QEMU runs in the proxy socket's folder, and its forward names the socket
            # relative to it: a warm-pool member's folder is renamed when it is adopted, and
            # a working folder follows a rename where a path would not.
            cwd=self.proxy_socket.parent if self.proxy_socket is not None else None,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        log_file.close()

    async def _connect(self, timeout: float) -> None:
        assert self.qemu is not None
        self.qmp = QMPClient(f"sandkit-{self.params.get('hostname', 'vm')}")
        for _ in range(500):
            if self.qemu.returncode is not None:
                raise VMError(
                    f"QEMU exited with status {self.qemu.returncode}: "
                    + tail(self.paths.qemu_log, 5)
                )
            with contextlib.suppress(OSError, QMPError):
                if self.paths.qmp.exists():
                    await self.qmp.connect(str(self.paths.qmp))
                    break
            await asyncio.sleep(0.01)
        else:
            raise VMError("QEMU's QMP socket never appeared: " + tail(self.paths.qemu_log, 5))
        spawn(self._watch_events(), "qmp-events")
        status = await self.qmp.execute("query-status")
        log.debug("VM status %s", status)
        if self.restore_from is not None:
            await self._restore(self.restore_from, timeout)
        waiter = spawn(self.qemu.wait(), "qemu-wait")
        connect = spawn(
            GuestChannel.connect(self.paths.agent, timeout, ready=self.restore_from is None),
            "agent-connect",
        )
        done, _ = await asyncio.wait({waiter, connect}, return_when=asyncio.FIRST_COMPLETED)
        if connect not in done:
            connect.cancel()
            raise VMError(f"QEMU exited with status {self.qemu.returncode} during boot")
        waiter.cancel()
        self.channel = connect.result()
        spawn(self.channel.pump(), "agent-pump")
        if self.restore_from is not None:  # the restored agent said ready long ago
            try:
                async with asyncio.timeout(timeout):
                    await self.channel.ping()
            except TimeoutError:
                raise VMError("the restored guest's agent does not answer") from None

    async def _restore(self, state: Path, timeout: float) -> None:
        """Load a golden's device state; its RAM is already in our RAM file (x-ignore-shared)."""
        assert self.qmp is not None
        await self.qmp.execute(
            "migrate-set-capabilities",
            {"capabilities": [{"capability": "x-ignore-shared", "state": True}]},
        )
        await self.qmp.execute("migrate-incoming", {"uri": f"exec:cat {shlex.quote(str(state))}"})
        await self.migration_done(timeout)
        if self.ram_file is not None and not self.keep_ram_file:
            self.ram_file.unlink(missing_ok=True)  # mapped: the memory goes when QEMU does

    async def migration_done(self, timeout: float = 60.0) -> None:
        """Wait for a migration (either end) to complete; a failure quotes QEMU's reason."""
        assert self.qmp is not None
        async with asyncio.timeout(timeout):
            while True:
                info = await self.qmp.execute("query-migrate")
                assert isinstance(info, dict)
                status = info.get("status")
                if status == "completed":
                    return
                if status in ("failed", "cancelled"):
                    detail = info.get("error-desc") or tail(self.paths.qemu_log, 5)
                    raise VMError(f"migration {status}: {detail}")
                await asyncio.sleep(0.005)

    async def save(self, state: Path, timeout: float = 60.0) -> None:
        """Save the guest (paused at the end) to ``state``: devices only, the RAM stays in
        its file (x-ignore-shared), so this takes milliseconds."""
        assert self.qmp is not None and self.machine == "q35"
        await self.qmp.execute(
            "migrate-set-capabilities",
            {"capabilities": [{"capability": "x-ignore-shared", "state": True}]},
        )
        # QEMU writes the file itself, through a descriptor we hand it: with `exec:cat >`
        # "completed" can come before cat has written the end, and a short state file
        # would pass its digest.
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            self.qmp.send_fd_scm(fd)
            await self.qmp.execute("getfd", {"fdname": "migration"})
        finally:
            os.close(fd)
        await self.qmp.execute("migrate", {"uri": "fd:migration"})
        await self.migration_done(timeout)

    async def attach_share(self) -> None:
        """Hotplug virtiofs into the running q35 guest and mount it at the fixed path."""
        assert self.qmp is not None and self.channel is not None
        assert self.machine == "q35" and self.share is not None
        for command, arguments in qemu.share_hotplug(self.paths.share_socket):
            await self.qmp.execute(command, arguments)
        # The device appears within milliseconds of the hotplug; mount as soon as it does.
        mount = (
            "i=0; until mount -t virtiofs share /run/sandkit/share 2>/dev/null; do"
            " i=$((i+1)); [ $i -gt 1000 ] && exec mount -t virtiofs share /run/sandkit/share;"
            " sleep 0.01; done"
        )
        done = await self.channel.run(["/bin/sh", "-c", mount])
        if done.exit_status != 0:
            raise VMError("the hotplugged share did not mount: " + done.stderr.decode().strip())

    async def _watch_events(self) -> None:
        assert self.qmp is not None
        with contextlib.suppress(QMPError, asyncio.CancelledError):
            async for event in self.qmp.events:
                log.info("QMP event %s", event["event"])

    # -- running --------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.qemu.pid if self.qemu else None

    async def wait(self) -> int:
        assert self.qemu is not None
        return await self.qemu.wait()

    # -- shutdown -------------------------------------------------------------------------
    async def shutdown(self, timeout: float = 10.0) -> None:
        """Power off through the agent; if the guest ignores it, QMP quit; then kill."""
        try:
            if self.qemu is not None and self.qemu.returncode is None:
                if self.channel is not None:
                    await self.channel.poweroff()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout / 2):
                            await self.qemu.wait()
                if self.qemu.returncode is None and self.qmp is not None:
                    with contextlib.suppress(QMPError, OSError, TimeoutError):
                        async with asyncio.timeout(timeout / 4):
                            await self.qmp.execute("quit")
                            await self.qemu.wait()
        finally:
            await self.kill()

    async def kill(self) -> None:
        """Hard stop and cleanup; safe to call at any time, more than once."""
        if self.channel is not None:
            self.channel.close()
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                await self.qmp.disconnect()
        for proc in (self.qemu, self.virtiofsd):
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await proc.wait()
        for sock in (self.paths.qmp, self.paths.agent, self.paths.share_socket):
            sock.unlink(missing_ok=True)
        if self.ram_file is not None:
            self.ram_file.unlink(missing_ok=True)
        if self.paths.sockets != self.paths.state:
            shutil.rmtree(self.paths.sockets, ignore_errors=True)
