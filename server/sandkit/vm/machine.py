"""One VM's processes: virtiofsd and QEMU, QMP, the guest channel.

Launch in phases (prepare files, start virtiofsd and QEMU (vm/launch.py: they die with
this process), connect QMP, wait for the guest agent); shut down gracefully (the agent
powers the guest off), then with QMP `quit`, then by killing; clean up always. Every
launch error quotes the console (vm/console.py); the accelerator is vm/accel.py's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path

from qemu.qmp import QMPClient, QMPError

from sandkit.logs import logger
from sandkit.tasks import spawn
from sandkit.vm import launch, qemu
from sandkit.vm.accel import choose_accel
from sandkit.vm.channel import ChannelError, GuestChannel
from sandkit.vm.console import VMError, tail
from sandkit.vm.guestinfo import SHARE_MOUNT
from sandkit.vm.image import Image
from sandkit.vm.machinefiles import MachinePaths, tb_size_override

__all__ = ["Machine", "MachinePaths", "VMError", "choose_accel", "tail"]

log = logger(__name__)


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    if proc.returncode:
        raise VMError(f"{argv[0]} failed: {out.decode(errors='replace').strip()}")


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
        die_with_parent: bool = True,
        host_shares: Sequence[Path] = (),
    ) -> None:
        """``machine="q35"`` keeps the RAM in ``ram_file`` (unlinked once restored, unless
        ``keep_ram_file``: it is to be saved) and takes the share by hotplug
        (attach_share); ``restore_from`` (a golden's migration state, q35 only) resumes a
        clone of the golden instead of booting. Each guest connection to the proxy address
        is carried to the Unix socket ``proxy_socket`` (it need not listen yet).
        QEMU and virtiofsd are SIGKILLed when this process ends, unless not
        ``die_with_parent``. ``host_shares`` are host-mount@1 folders, one virtiofsd
        each, tags hm0, hm1, ...: on microvm's command line, hotplugged on q35
        (attach_host_shares); kits/kitapply mounts them in the guest."""
        self.image, self.paths = image, paths
        self.cpus, self.memory_mib = cpus, memory_mib
        self.share, self.params, self.proxy_socket = share, params, proxy_socket
        self.machine, self.ram_file, self.restore_from = machine, ram_file, restore_from
        self.keep_ram_file = keep_ram_file
        # Without its supervisor a VM has no proxy, no sync and no owner: it must not live on.
        self.die_with_parent = die_with_parent
        self.qemu: asyncio.subprocess.Process | None = None
        self.virtiofsd: asyncio.subprocess.Process | None = None
        if len(host_shares) > qemu.MAX_HOST_SHARES:
            raise VMError(
                f"{len(host_shares)} host-mount@1 folders: a sandbox takes at most "
                f"{qemu.MAX_HOST_SHARES}"
            )
        self.host_shares = tuple(host_shares)
        self.host_virtiofsds: list[asyncio.subprocess.Process] = []
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
        for sock in self._sockets():
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

    def _sockets(self) -> list[Path]:
        host = [self.paths.host_share_socket(n) for n in range(len(self.host_shares))]
        return [self.paths.qmp, self.paths.agent, self.paths.share_socket, *host]

    async def _start_virtiofsd(self) -> None:
        if self.share is not None:
            self.virtiofsd = await launch.start_virtiofsd(
                self.share,
                self.paths.share_socket,
                self.paths.state / "virtiofsd.log",
                owned_by_parent=self.die_with_parent,
            )
        # One virtiofsd per host folder, each sandboxed as the workspace's is: a guest
        # that breaks one reaches that folder only.
        for n, folder in enumerate(self.host_shares):
            self.host_virtiofsds.append(
                await launch.start_virtiofsd(
                    folder,
                    self.paths.host_share_socket(n),
                    self.paths.state / f"virtiofsd-{qemu.host_share_tag(n)}.log",
                    owned_by_parent=self.die_with_parent,
                )
            )

    def spec(self) -> qemu.MachineSpec:
        proxy = None
        if self.proxy_socket is not None:
            # The socket is named relative to QEMU's working folder (see _start_qemu).
            proxy = qemu.proxy_command(self.proxy_socket.name, launch.socat())
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
            host_shares=(
                tuple(self.paths.host_share_socket(n) for n in range(len(self.host_shares)))
                if self.machine == "microvm"
                else ()
            ),
            proxy_command=proxy,
            kernel_params=self.params,
            machine=self.machine,
            ram_file=self.ram_file,
            incoming=self.restore_from is not None,
            tb_size_mib=tb_size_override(),
        )

    async def _start_qemu(self) -> None:
        self.qemu = await launch.start_qemu(
            qemu.argv(self.spec()),
            self.paths.qemu_log,
            # QEMU runs in the proxy socket's folder, and its forward names the socket
            # relative to it: a warm-pool member's folder is renamed when it is adopted, and
            # a working folder follows a rename where a path would not.
            self.proxy_socket.parent if self.proxy_socket is not None else None,
            owned_by_parent=self.die_with_parent,
        )

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
        point = f"{qemu.SHARE_TAG} {SHARE_MOUNT}"
        mount = (
            f"i=0; until mount -t virtiofs {point} 2>/dev/null; do"
            f" i=$((i+1)); [ $i -gt 1000 ] && exec mount -t virtiofs {point};"
            " sleep 0.01; done"
        )
        done = await self.channel.run(["/bin/sh", "-c", mount])
        if done.exit_status != 0:
            raise VMError("the hotplugged share did not mount: " + done.stderr.decode().strip())

    async def attach_host_shares(self) -> None:
        """Hotplug the host-mount shares into the running q35 guest (each into its root
        port); the guest mounts them at the kits' paths (sandbox/kitapply.py)."""
        assert self.qmp is not None and self.machine == "q35"
        for n in range(len(self.host_shares)):
            for command, arguments in qemu.host_share_hotplug(n, self.paths.host_share_socket(n)):
                await self.qmp.execute(command, arguments)

    async def disk_mib(self) -> int:
        """The root disk's virtual size (QMP query-block), in MiB."""
        assert self.qmp is not None
        blocks = await self.qmp.execute("query-block")
        sizes = [
            int(b["inserted"]["image"]["virtual-size"])
            for b in (blocks if isinstance(blocks, list) else [])
            if isinstance(b, dict) and b.get("device") == "root" and "inserted" in b
        ]
        if not sizes:
            raise VMError(f"QEMU names no root disk in query-block: {str(blocks)[:200]}")
        return sizes[0] >> 20

    async def grow_disk(self, mib: int) -> bool:
        """Grow the guest's disk to ``mib`` (never shrink it): the qcow2 overlay's virtual
        size through QMP while the VM runs, which virtio-blk shows the guest as a capacity
        change, then its ext4 root online (resize2fs on the mounted /dev/vda). Whether it
        grew: a disk at the size already costs one QMP call, no guest round trip."""
        assert self.qmp is not None and self.channel is not None
        if await self.disk_mib() >= mib:
            return False
        want = mib << 20
        await self.qmp.execute("block_resize", {"device": "root", "size": want})
        sectors = want // 512
        # The kernel reads the new capacity on the config-change interrupt: wait for it.
        script = (
            f"i=0; while [ $(cat /sys/block/vda/size) -lt {sectors} ]; do i=$((i+1)); "
            '[ $i -gt 400 ] && { echo "the disk did not grow" >&2; exit 3; }; sleep 0.05; '
            "done; resize2fs /dev/vda"
        )
        result = await self.channel.run(["sh", "-c", script])
        if result.exit_status != 0:
            raise VMError(
                f"growing the guest's root filesystem to {mib} MiB failed: "
                f"{result.stderr.decode(errors='replace').strip()[-300:]}",
                "",
            )
        log.info("disk grown to %d MiB", mib)
        return True

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
        for proc in (self.qemu, self.virtiofsd, *self.host_virtiofsds):
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await proc.wait()
        for sock in self._sockets():
            sock.unlink(missing_ok=True)
        if self.ram_file is not None:
            self.ram_file.unlink(missing_ok=True)
        if self.paths.sockets != self.paths.state:
            shutil.rmtree(self.paths.sockets, ignore_errors=True)
