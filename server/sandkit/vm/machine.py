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
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from qemu.qmp import QMPClient, QMPError

from sandkit.errors import SandkitError
from sandkit.paths import cache_dir
from sandkit.tasks import spawn
from sandkit.vm import qemu
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
        proxy_port: int | None,
    ) -> None:
        self.image, self.paths = image, paths
        self.cpus, self.memory_mib = cpus, memory_mib
        self.share, self.params, self.proxy_port = share, params, proxy_port
        self.qemu: asyncio.subprocess.Process | None = None
        self.virtiofsd: asyncio.subprocess.Process | None = None
        self.qmp: QMPClient | None = None
        self.channel: GuestChannel | None = None
        self.events: list[str] = []
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
        log_file = (self.paths.state / "virtiofsd.log").open("ab")
        self.virtiofsd = await asyncio.create_subprocess_exec(
            VIRTIOFSD,
            f"--socket-path={self.paths.share_socket}",
            "-o",
            f"source={self.share}",
            "-o",
            "cache=auto",
            "-o",
            "timeout=0.05",  # the guest sees host edits within 50 ms (default 1 s)
            "-o",
            "xattr",
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
        log_file.close()
        for _ in range(500):
            if self.paths.share_socket.exists():
                return
            if self.virtiofsd.returncode is not None:
                break
            await asyncio.sleep(0.01)
        raise VMError("virtiofsd did not start: " + tail(self.paths.state / "virtiofsd.log", 5))

    def spec(self) -> qemu.MachineSpec:
        proxy = None
        if self.proxy_port is not None:
            proxy = f"/bin/busybox nc 127.0.0.1 {self.proxy_port}"
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
            share_socket=self.paths.share_socket if self.share is not None else None,
            proxy_command=proxy,
            kernel_params=self.params,
        )

    async def _start_qemu(self) -> None:
        log_file = self.paths.qemu_log.open("ab")
        self.qemu = await asyncio.create_subprocess_exec(
            *qemu.argv(self.spec()),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
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
        waiter = spawn(self.qemu.wait(), "qemu-wait")
        connect = spawn(GuestChannel.connect(self.paths.agent, timeout), "agent-connect")
        done, _ = await asyncio.wait({waiter, connect}, return_when=asyncio.FIRST_COMPLETED)
        if connect not in done:
            connect.cancel()
            raise VMError(f"QEMU exited with status {self.qemu.returncode} during boot")
        waiter.cancel()
        self.channel = connect.result()
        spawn(self.channel.pump(), "agent-pump")

    async def _watch_events(self) -> None:
        assert self.qmp is not None
        with contextlib.suppress(QMPError, asyncio.CancelledError):
            async for event in self.qmp.events:
                self.events.append(str(event["event"]))
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
        if self.paths.sockets != self.paths.state:
            shutil.rmtree(self.paths.sockets, ignore_errors=True)
