"""Golden snapshots for the warm pool.

A golden is one q35 guest booted without a share, primed, and saved by migration with
``x-ignore-shared``: its RAM stays in a sparse file, the device state is a few hundred KiB.
A pool member is a clone: the RAM file copied sparsely to tmpfs, the golden's disk
overlay copied (so no sandbox ever depends on a golden that a rebuild replaces), and QEMU
started with ``-incoming defer`` on the copies (see vm/machine.py). Migration with
``x-ignore-shared`` rather than savevm: the RAM is not streamed through the migration
at all, it stays in its file, which a clone copies sparsely (savevm would write every
page into the qcow2 and read it all back).

A golden is keyed by every input that must match between the saving and the restoring
QEMU (the image, QEMU's version, the shape, the accelerator, the command line with the
per-VM paths left out) and carries the digests of its files. It is checked before every
clone and rebuilt when stale, missing or corrupt: never restored blind.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.fsio import locked, take_lock
from sandkit.logs import logger
from sandkit.paths import cache_dir, ram_dir
from sandkit.pids import alive
from sandkit.vm import qemu
from sandkit.vm.image import Image

# A golden's files, their check and its build: vm/snapshot.py.
from sandkit.vm.snapshot import (
    FILES,
    POOL_PARAMS,
    PRIME,
    Golden,
    GoldenError,
    build,
    cp_sparse,
    file_digest,
    publish,
)

if TYPE_CHECKING:
    from sandkit.vm.machine import Machine

__all__ = [
    "FILES",
    "POOL_PARAMS",
    "PRIME",
    "Clone",
    "Golden",
    "GoldenError",
    "clone",
    "discard",
    "enabled",
    "file_digest",
    "golden_key",
    "golden_root",
    "goldens",
    "key_inputs",
    "remove",
    "remove_locks",
    "save_prepared",
    "sweep",
]

log = logger(__name__)
FORMAT = 2  # of the golden's folder and manifest (2: its disk grown to DEFAULT_DISK_MIB)


def enabled() -> bool:
    """New sandboxes restore the golden on their first start unless $SANDKIT_GOLDEN=0 (then
    they boot, as a sandbox with a disk always does); the warm pool restores regardless."""
    return os.environ.get("SANDKIT_GOLDEN", "1") != "0"


@functools.cache
def qemu_version(binary: str = "qemu-system-x86_64") -> str:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else f"unknown ({binary})"


def key_inputs(image: Image, cpus: int, memory_mib: int, accel: str) -> dict[str, object]:
    """Everything a restore depends on. The per-VM paths (sockets, logs, the disk and RAM
    files, the proxy's port) are placeholders: they may differ between save and restore."""
    spec = qemu.MachineSpec(
        kernel=image.kernel,
        initrd=image.initrd,
        disk=Path("@disk"),
        console_log=Path("@console"),
        qmp_socket=Path("@qmp"),
        agent_socket=Path("@agent"),
        cpus=cpus,
        memory_mib=memory_mib,
        accel=accel,
        proxy_command="@proxy",
        kernel_params=POOL_PARAMS,
        machine="q35",
        ram_file=Path("@ram"),
    )
    inputs: dict[str, object] = {
        "format": FORMAT,
        "image": image.key,
        "image_build": image.build,  # a rebuilt image (same key) has other bytes
        "qemu": qemu_version(),
        "argv": qemu.argv(spec),
        # Every golden is grown to the default disk size before it is saved; a bigger
        # --disk grows once at its first start, so the size is not a per-sandbox input.
        "disk_mib": qemu.DEFAULT_DISK_MIB,
    }
    if accel == "kvm":  # `-cpu host`: the state is only good on this kind of CPU and kernel
        inputs["host"] = host_identity()
    return inputs


@functools.cache
def host_identity() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        cpu = next((ln for ln in info.splitlines() if ln.startswith("model name")), "")
        cpu += next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
    digest = hashlib.sha256(cpu.encode()).hexdigest()[:16]
    return f"{os.uname().release}/{digest}"


def golden_key(inputs: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]


def golden_root() -> Path:
    return cache_dir() / "golden"


@dataclass(frozen=True)
class Clone:
    """A clone's own copies of a golden's files. ``prepare``: the member was asked for a
    kits' prepared snapshot that does not exist yet, so it got the base golden and is to
    build that snapshot (see save_prepared)."""

    key: str
    base_key: str
    inputs: dict[str, object]
    state: Path
    ram: Path
    disk: Path
    prepare: bool = False


def prepared_key(base_key: str, kits: str) -> str:
    """A prepared snapshot: the base golden plus the once-per-sandbox steps of the kits
    whose state digest is ``kits`` (files/home, installs)."""
    return f"{base_key}-kits-{kits}"


async def clone(
    image: Image,
    cpus: int,
    memory_mib: int,
    accel: str,
    into: Path,
    name: str,
    kits: str | None = None,
) -> Clone:
    """Check (or build) the golden for this shape and copy it for one VM: the disk and the
    device state into ``into``, the RAM to tmpfs. With ``kits`` (a kit state digest), the
    prepared snapshot for those kits when there is a sound one."""
    inputs = key_inputs(image, cpus, memory_mib, accel)
    base_key = golden_key(inputs)
    async with _locked(golden_root() / f"{base_key}.lock"):
        sweep()
        key, prepare = base_key, kits is not None
        if kits is not None:
            prepared = Golden(golden_root() / prepared_key(base_key, kits))
            why = await asyncio.to_thread(prepared.problem, prepared.dir.name)
            if why is None:
                key, prepare = prepared.dir.name, False
            elif why != "it was never built":
                log.warning("prepared snapshot %s cannot be used: %s", prepared.dir.name, why)
        golden = Golden(golden_root() / key)
        if key == base_key:
            why = await asyncio.to_thread(golden.problem, key)
            if why is not None:
                log.warning("golden snapshot %s cannot be used: %s; building it", key, why)
                await build(image, cpus, memory_mib, accel, golden, inputs, key)
        into.mkdir(parents=True, exist_ok=True)
        ram = ram_dir() / f"{name}-{os.getpid()}.ram"
        result = Clone(
            key, base_key, inputs, into / "golden-state.bin", ram, into / "disk.qcow2", prepare
        )
        try:
            for copy in (  # one at a time: a failure leaves no copy running
                (golden.path("ram"), result.ram),
                (golden.path("disk.qcow2"), result.disk),
                (golden.path("state.bin"), result.state),
            ):
                await cp_sparse(*copy)
        except BaseException:
            for path in (result.ram, result.disk, result.state):
                path.unlink(missing_ok=True)
            raise
        result.disk.chmod(0o644)  # the golden's files are read-only; the copies are not
        result.ram.chmod(0o600)
        return result


async def save_prepared(machine: Machine, clone: Clone, kits: str, shape: str) -> str:
    """Save a member that has just run its kits' once-per-sandbox steps as the prepared
    snapshot for those kits (the guest is paused when this returns; the caller resumes
    it). Built aside and renamed into place, like a golden."""
    key = prepared_key(clone.base_key, kits)
    target = Golden(golden_root() / key)
    work = target.dir.with_name(f"{key}.build-{os.getpid()}")
    async with _locked(golden_root() / f"{clone.base_key}.lock"):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            await machine.save(work / "state.bin")
            assert machine.ram_file is not None
            await asyncio.gather(  # QEMU is paused: the RAM and the disk hold still
                cp_sparse(machine.ram_file, work / "ram"),
                cp_sparse(machine.paths.disk, work / "disk.qcow2"),
            )
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        await publish(
            work,
            target,
            {"key": key, "base": clone.base_key, "kits": kits, "shape": shape},
            clone.inputs,
        )
    return key


@contextlib.asynccontextmanager
async def _locked(lock: Path) -> AsyncIterator[None]:
    """An exclusive flock, waited for without a thread (so a cancelled wait leaves nothing
    behind): held while a golden is checked and copied, or built, or saved."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    while (fd := take_lock(lock)) is None:
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        os.close(fd)


def discard(key: str) -> None:
    """A golden a restore failed from: out of the way at once (the next clone rebuilds)."""
    folder = golden_root() / key
    aside = folder.with_name(f"{key}.old-{os.getpid()}")
    with contextlib.suppress(OSError):
        folder.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
        log.warning("golden snapshot %s discarded: a restore from it failed", key)


def _owner_pid(name: str) -> int | None:
    """The process that made a RAM file or a build folder: the number after the last '-'."""
    tail = name.rsplit("-", 1)[-1].split(".", 1)[0]
    return int(tail) if tail.isdigit() else None


def sweep() -> list[Path]:
    """Remove what a killed process left: RAM files on tmpfs (a member's copy is unlinked
    once restored, a golden's when its build ends) and half-built golden folders."""
    removed = []
    for path in ram_dir().glob("*.ram"):
        pid = _owner_pid(path.name)
        if pid is not None and not alive(pid):
            path.unlink(missing_ok=True)
            removed.append(path)
    root = golden_root()
    for path in (*root.glob("*.build-*"), *root.glob("*.old-*")) if root.is_dir() else ():
        pid = _owner_pid(path.name)
        if pid is not None and not alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def goldens() -> list[dict[str, object]]:
    """The golden snapshots on disk: key, shape, image, when built, MiB used."""
    found = []
    for manifest in sorted(golden_root().glob("*/manifest.json")):
        try:
            data = json.loads(manifest.read_text())
            inputs = data["inputs"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        used = sum(p.stat().st_blocks * 512 for p in manifest.parent.iterdir() if p.is_file())
        found.append(
            {
                "key": data.get("key"),
                "shape": data.get("shape") or _shape_of(inputs.get("argv") or []),
                "kits": data.get("kits"),
                "image": inputs.get("image"),
                "built": data.get("built"),
                "mib": round(used / (1 << 20), 1),
            }
        )
    return found


def _shape_of(argv: list[str]) -> str | None:
    try:
        return f"{argv[argv.index('-smp') + 1]}c{argv[argv.index('-m') + 1]}"
    except (ValueError, IndexError):
        return None


def remove(keep_images: Collection[str] = ()) -> int:
    """Delete the golden snapshots, but those of ``keep_images``; they are rebuilt on the
    next fill. Returns how many."""
    count = 0
    for entry in goldens():
        if entry["image"] in keep_images:
            continue
        folder = golden_root() / str(entry["key"])
        lock = golden_root() / f"{str(entry['key']).split('-kits-')[0]}.lock"
        with locked(lock):  # not while a clone copies it
            shutil.rmtree(folder, ignore_errors=True)
        count += 1
    remove_locks()
    return count


def remove_locks() -> list[Path]:
    """Unlink the locks of base keys with no golden left (neither the base nor a prepared
    snapshot of it), each under its own lock and only when no other process holds it: a
    clone, build or save in progress keeps its lock. Returns those removed."""
    root = golden_root()
    removed: list[Path] = []
    for lock in sorted(root.glob("*.lock")) if root.is_dir() else ():
        base = lock.name.removesuffix(".lock")
        if _has_golden(root, base):
            continue
        fd = take_lock(lock)
        if fd is None:
            continue
        try:
            if not _has_golden(root, base):  # none built since the look above
                lock.unlink()
                removed.append(lock)
        finally:
            os.close(fd)
    return removed


def _has_golden(root: Path, base: str) -> bool:
    return (root / base).exists() or any(root.glob(f"{base}-kits-*"))
