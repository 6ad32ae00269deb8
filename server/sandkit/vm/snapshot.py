"""A golden snapshot on disk (see vm/golden.py): its files, their sparse digests and the
check before every restore; its build (boot a q35 guest without a share, prime it, save
it) and its publication (digests, manifest, read-only files, renamed into place whole)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sandkit.errors import SandkitError
from sandkit.logs import logger
from sandkit.paths import ram_dir, runtime_dir
from sandkit.vm import qemu
from sandkit.vm.image import Image

log = logger(__name__)

FILES = ("state.bin", "ram", "disk.qcow2")
# The commands every adoption runs first: their files are in the guest's page cache when
# the golden is saved (TCG's translations are not; each clone primes again).
PRIME = (["true"], ["sh", "-c", "cat /dev/null"], ["bash", "-lc", "true"])
POOL_PARAMS = {"proxy": f"{qemu.PROXY_ADDRESS}:{qemu.PROXY_PORT}", "pool": "1"}


class GoldenError(SandkitError):
    """A golden snapshot could not be built or copied."""


def file_digest(path: Path) -> str:
    """sha256 over a sparse file's data extents and their offsets: a RAM file of 1 GiB
    holds ~100 MiB of data, and reading its holes would cost more than hashing."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        h.update(size.to_bytes(8, "little"))
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            h.update(start.to_bytes(8, "little"))
            f.seek(start)
            left = end - start
            while left:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            offset = end
    return h.hexdigest()


@dataclass(frozen=True)
class Golden:
    dir: Path

    @property
    def manifest(self) -> Path:
        return self.dir / "manifest.json"

    def path(self, name: str) -> Path:
        return self.dir / name

    def problem(self, key: str) -> str | None:
        """Why this golden must not be restored (None: it may)."""
        try:
            manifest = json.loads(self.manifest.read_text())
        except FileNotFoundError:
            return "it was never built"
        except (OSError, ValueError) as exc:
            return f"its manifest is unreadable ({exc})"
        if not isinstance(manifest, dict) or not isinstance(manifest.get("digests"), dict):
            return "its manifest is not a golden's"
        if manifest.get("key") != key:
            return "it was built for other inputs"
        for name in FILES:
            try:
                digest = file_digest(self.path(name))
            except OSError as exc:
                return f"{name} is unreadable ({exc.strerror})"
            if digest != manifest.get("digests", {}).get(name):
                return f"{name} does not match its digest (corrupt)"
        return None


async def cp_sparse(source: Path, target: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "cp", "--sparse=always", str(source), str(target), stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode:
        raise GoldenError(f"cannot copy {source}: {err.decode(errors='replace').strip()}")


async def publish(
    work: Path, target: Golden, fields: dict[str, object], inputs: dict[str, object]
) -> None:
    """Digest a snapshot built in ``work``, write its manifest, make its files read-only
    and rename it over ``target``: it appears whole or not at all."""
    digests = await asyncio.to_thread(lambda: {n: file_digest(work / n) for n in FILES})
    manifest = {**fields, "inputs": inputs, "digests": digests, "built": time.time()}
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for name in FILES:
        (work / name).chmod(0o444)
    old = target.dir.with_name(f"{target.dir.name}.old-{os.getpid()}")
    if target.dir.exists():
        target.dir.rename(old)
    work.rename(target.dir)
    shutil.rmtree(old, ignore_errors=True)


async def build(
    image: Image,
    cpus: int,
    memory_mib: int,
    accel: str,
    golden: Golden,
    inputs: dict[str, object],
    key: str,
    timeout: float = 300.0,
) -> None:
    """Boot a q35 guest with no share, prime it, save it; the folder appears whole or not
    at all (built aside, then renamed over the old one)."""
    from sandkit.vm.machine import Machine, MachinePaths

    started = time.monotonic()
    work = golden.dir.with_name(f"{golden.dir.name}.build-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sockets = runtime_dir() / f"golden-{key[:12]}-{os.getpid()}"
    ram = ram_dir() / f"golden-{key}-{os.getpid()}.ram"
    machine = Machine(
        image,
        MachinePaths(work, sockets),
        cpus=cpus,
        memory_mib=memory_mib,
        share=None,
        params=dict(POOL_PARAMS),
        # Nothing listens there: nothing in the guest connects while it is being built.
        proxy_socket=sockets / "proxy.sock",
        machine="q35",
        ram_file=ram,
        die_with_parent=True,
    )
    try:
        await machine.launch(timeout)
        assert machine.channel is not None
        # Grown once here, so that no clone pays for it at its start.
        await machine.grow_disk(qemu.DEFAULT_DISK_MIB)
        for argv in PRIME:
            await machine.channel.run(argv, user="agent")
        await machine.channel.run(["sync"])  # the disk holds what the guest wrote so far
        await machine.save(work / "state.bin")
        # QEMU is paused after the save: the RAM file no longer changes.
        await cp_sparse(ram, work / "ram")
    except BaseException as exc:
        await machine.kill()
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, SandkitError):
            raise GoldenError(f"cannot build the warm pool's golden snapshot: {exc}") from None
        raise
    await machine.kill()
    for name in ("console.log", "qemu.log"):
        (work / name).rename(work / f"build-{name}")
    await publish(work, golden, {"key": key, "shape": f"{cpus}c{memory_mib}m"}, inputs)
    log.info("golden snapshot %s built in %.1f s", key, time.monotonic() - started)
