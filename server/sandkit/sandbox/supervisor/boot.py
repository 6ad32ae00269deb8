"""Boot: QEMU first, the proxy while the guest boots, then the workspace, the CA and the
kits; a warm-pool member instead waits, paused, to be adopted."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.errors import SandkitError
from sandkit.logs import logger
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.supervisor import egress, guest, workspace
from sandkit.sandbox.supervisor.process import Ending, describe_failure
from sandkit.vm import golden
from sandkit.vm.guestinfo import AGENT_UID, SHARE_MOUNT
from sandkit.vm.image import Image, ensure_image
from sandkit.vm.image import load as load_image
from sandkit.vm.machine import Machine, MachinePaths, VMError, choose_accel

if TYPE_CHECKING:
    from sandkit.kits.resolution import Resolution
    from sandkit.sandbox.store import Config
    from sandkit.sandbox.supervisor.process import Supervisor

log = logger("sandkit.supervisor")
PROXY_ADDRESS = "10.0.2.100:3128"


async def boot_and_serve(sup: Supervisor) -> None:
    """The boot task: a failure ends the sandbox (crashed); success makes it running or
    pooled, watched. A stop cancels it."""
    try:
        await boot(sup)
    except Exception as exc:
        if not isinstance(exc, SandkitError):
            log.exception("boot failed")
        sup.end(Ending(SandboxState.CRASHED, describe_failure(exc)))
        return
    assert sup.machine is not None
    preload()
    pooled = sup.config.pool_shape is not None
    sup.move(
        SandboxState.POOLED if pooled else SandboxState.RUNNING,
        qemu_pid=sup.machine.pid,
    )
    sup.spawn(sup.watch_vm(), "watch-vm")
    if not pooled:  # a member publishes at adoption, under its new name
        sup.spawn(sup.serve_ports(), "ports")


# What a started supervisor may still import (adoption, agent-argv, the sync): loaded now,
# so that it keeps working if its installation is replaced or removed while it runs, and
# so that an adoption does not import them in the event loop (importing the sync's
# watchers there, when they were watchfiles', held the guest's replies up by 30-50 ms).
LATER = (
    "sandkit.kits",
    "sandkit.kits.context",
    "sandkit.sandbox.agent_command",
    "sandkit.sandbox.kitapply",
    "sandkit.sync.engine",
    "sandkit.sync.protect",
    "sandkit.sync.watch",
)


def preload() -> None:
    for module in LATER:
        importlib.import_module(module)


async def boot(sup: Supervisor) -> None:
    """Start QEMU first and set up the proxy while the guest boots: the proxy's socket
    is bound now, so the VM's forward can name it before anything listens."""
    from sandkit.net.access import bind_private

    c = sup.config
    sup.sandbox.sockets.mkdir(parents=True, exist_ok=True, mode=0o700)
    listener = bind_private(sup.proxy_socket)
    image = load_image(sup.image_path) if sup.image_path else None
    # The kits, before QEMU: the image variant and the host-mount shares depend on them.
    early = None if plain_member(c) else await asyncio.to_thread(guest.resolve, c)
    variant = image_variant(c, early)
    if image is None or image.variant != variant:
        image = await asyncio.to_thread(ensure_image, None, False, variant)
    clone, resolution, kits = await restore_point(sup, image)
    resolution = resolution or early
    host_shares = await asyncio.to_thread(
        host_mount_folders, resolution if not c.pool_shape else None
    )
    machine = sup.machine = make_machine(sup, image, clone, host_shares)
    if c.workspace:  # the share holds the workspace before the guest looks at it
        await workspace.start_sync(sup, Path(c.workspace))
    launch = sup.launching = sup.attempt(machine.launch(), "launch")
    log.info("QEMU starting")
    try:
        await egress.start_proxy(sup, listener, resolution)
    except BaseException:
        launch.cancel()
        listener.close()
        raise
    log.info("proxy listening on %s", sup.proxy_socket)
    if c.workspace:
        await workspace.place_workspace_files(sup, Path(c.workspace))
    await launched(launch, clone)
    if clone is not None:
        clone.state.unlink(missing_ok=True)
        log.info("restored from golden snapshot %s (%s)", clone.key, machine.accel)
        if c.pool_shape:
            await wait_in_pool(sup, clone, kits)
            return
        if c.workspace:
            await machine.attach_share()
        await machine.attach_host_shares()  # mounted by the kits' step (kitapply)
        await guest.make_unique(sup)  # as an adoption does: name, entropy, clock, workspace
    else:
        log.info("guest agent ready (%s)", machine.accel)
    # Independent guest work, side by side: growing (a booted first start, or a --disk
    # above the golden's) and the CA.
    await asyncio.gather(grow_root(machine, c.disk_mib), guest.trust_ca(sup))
    await guest.apply_kits(sup)
    log.info("kits applied")


def plain_member(config: Config) -> bool:
    """A warm-pool member for no kits in particular: any sandbox may adopt it."""
    return bool(config.pool_shape and not config.pool_prepared)


def image_variant(config: Config, resolution: Resolution | None = None) -> str:
    """The guest image variant the sandbox's kits ask for (kits/images.py): the one with
    Docker Engine for a `-docker` template or the `docker` mixin, else the base."""
    from sandkit.kits.images import VARIANT_BASE
    from sandkit.kits.images import image_variant as variant_of

    if plain_member(config):
        return VARIANT_BASE  # a plain member: any sandbox may adopt it (adopt.py checks)
    return variant_of((resolution or guest.resolve(config)).sandbox)


def host_mount_folders(resolution: Resolution | None) -> list[Path]:
    """host-mount@1: each mount's host folder, made when missing (sandbox/hostmounts.py:
    private, links refused), in the kits' order, which names their tags (hm0, hm1, ...).
    A new folder is the guest agent's: uid 1000 as virtiofsd run by root shows it; run
    by a user, virtiofsd maps that user to the agent already."""
    from sandkit.sandbox.hostmounts import host_mount_folder

    if resolution is None:
        return []
    owner = (AGENT_UID, AGENT_UID) if os.geteuid() == 0 else None
    return [
        host_mount_folder(
            h.key, 0o755 if h.mode is None else h.mode, owner, {"kit": h.kit, "path": h.path}
        )[0]
        for h in resolution.sandbox.host_mounts
    ]


async def grow_root(machine: Machine, disk_mib: int) -> None:
    """The guest's disk at ``disk_mib`` (vm/machine.py grow_disk). Goldens are saved at
    the default size, so a clone grows only for a bigger --disk; a booted sandbox grows on
    its first start; a later start finds the size in query-block (no guest round trip)."""
    await machine.grow_disk(disk_mib)


async def launched(launch: asyncio.Task[BaseException | None], clone: golden.Clone | None) -> None:
    """Wait for the launch; its error is the boot's."""
    try:
        error = await launch
        if error is not None:
            raise error
    except VMError:
        if clone is not None:  # never restore from it again: the next clone rebuilds
            golden.discard(clone.key)
        raise


async def restore_point(
    sup: Supervisor, image: Image
) -> tuple[golden.Clone | None, Resolution | None, str | None]:
    """Pool members, and a new sandbox's first start, restore a clone of the shape's
    golden snapshot (built first if need be), or of the snapshot prepared for its kits;
    a sandbox that has a disk boots from it."""
    c = sup.config
    first_start = not (sup.sandbox.dir / "disk.qcow2").exists()
    if not (c.pool_shape or (first_start and golden.enabled())):
        return None, None, None
    resolution, kits = None, None
    accel = await asyncio.to_thread(choose_accel, image)
    if c.pool_prepared:
        from sandkit.sandbox.kitapply import kit_state_digest

        resolution = await asyncio.to_thread(guest.resolve, c)
        kits = kit_state_digest(resolution.sandbox, list(resolution.loaded))
        # The policy the installs run under is part of what was prepared.
        kits = hashlib.sha256(f"{kits}/{c.default_policy}".encode()).hexdigest()[:16]
    clone = await golden.clone(
        image, c.cpus, c.memory_mib, accel, sup.sandbox.dir, c.name, kits=kits
    )
    return clone, resolution, kits


def make_machine(
    sup: Supervisor, image: Image, clone: golden.Clone | None, host_shares: list[Path] | None = None
) -> Machine:
    c = sup.config
    params = {"hostname": c.name, "proxy": PROXY_ADDRESS}
    if c.workspace:
        params["ws"] = c.workspace
    if clone is not None:
        params = dict(golden.POOL_PARAMS)
    return sup.machine_factory(
        image,
        MachinePaths(sup.sandbox.dir, sup.sandbox.sockets),
        cpus=c.cpus,
        memory_mib=c.memory_mib,
        # A restored VM gets its share by hotplug; a member's starts empty, and is filled
        # and bound at the workspace's path at adoption.
        share=sup.sandbox.share if c.workspace or c.pool_shape else None,
        params=params,
        proxy_socket=sup.proxy_socket,
        machine="q35" if clone else "microvm",
        ram_file=clone.ram if clone else None,
        restore_from=clone.state if clone else None,
        keep_ram_file=bool(clone and clone.prepare),
        host_shares=host_shares or (),
    )


async def wait_in_pool(sup: Supervisor, clone: golden.Clone, kits: str | None) -> None:
    """A restored member: its kits prepared (and saved for the next clones) when asked
    for, the share hotplugged, the first commands run once, then paused (no CPU)."""
    machine = sup.machine
    assert machine is not None and machine.channel is not None and machine.qmp is not None
    if clone.prepare and kits is not None:
        await prepare_kits(sup, clone, kits)
    await guest.trust_ca(sup)
    await machine.attach_share()
    await guest.rehearse_adoption(sup)
    # Run once what every adoption runs first (a command as the agent user, a shell),
    # so that its code is translated (TCG's cache is not in the snapshot) before the pause.
    for argv in (["true"], ["sh", "-c", "cat /dev/null"], ["bash", "-lc", "true"]):
        await machine.channel.run(argv, user="agent", env=sup.guest_env)
    # ... and a file read over the share, from inside it (an agent's first command reads
    # the workspace): the guest's virtiofs paths translated too.
    prime = sup.sandbox.share / ".sandkit-prime"
    prime.write_bytes(b"\n")
    try:
        await machine.channel.run(
            ["cat", prime.name], user="agent", env=sup.guest_env, cwd=SHARE_MOUNT
        )
    finally:
        prime.unlink(missing_ok=True)
    await machine.qmp.execute("stop")
    # The sync journal's schema, made now (its fsyncs cost ~60 ms): it moves with the
    # folder, and an adoption's first sync finds it empty, as a new sandbox's.
    from sandkit.sync.journal import Journal

    await asyncio.to_thread(lambda: Journal(sup.sandbox.dir / "sync" / "sync.db").db.close())
    log.info("pooled (%s), paused", sup.config.pool_shape)


async def prepare_kits(sup: Supervisor, clone: golden.Clone, kits: str) -> None:
    """Run the kits' once-per-sandbox steps (files/home, installs through this member's
    proxy) and save the guest as the kits' prepared snapshot, without this member's
    CA: every clone trusts its own."""
    machine = sup.machine
    assert machine is not None and machine.channel is not None
    assert machine.qmp is not None and machine.ram_file is not None
    channel, pristine = machine.channel, "/var/lib/sandkit/bundle.pristine"
    started = time.monotonic()
    keep = f"mkdir -p /var/lib/sandkit && cp -p {guest.GUEST_CA_BUNDLE} {pristine}"
    forget = (
        f"mv {pristine} {guest.GUEST_CA_BUNDLE} && rm -f {guest.GUEST_CA} /var/lib/sandkit/ca-*"
    )

    async def guest_sh(script: str) -> None:
        done = await channel.run(["sh", "-c", script])
        if done.exit_status != 0:
            raise SandkitError("cannot prepare the snapshot: " + done.stderr.decode().strip())

    await guest_sh(keep)
    await guest.trust_ca(sup)
    await guest.apply_kits(sup, first_boot_only=True)
    await guest_sh(f"{forget} && sync")
    key = await golden.save_prepared(machine, clone, kits, str(sup.config.pool_shape))
    await machine.qmp.execute("cont")
    machine.ram_file.unlink(missing_ok=True)
    log.info("prepared snapshot %s built in %.1f s", key, time.monotonic() - started)
