"""Our initramfs (pure but for reading files): a static busybox, the virtio modules the
guest needs in dependency order, and /init. Written as an uncompressed newc cpio archive,
so the kernel spends no time decompressing it."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path

# What the guest needs from the kernel's modules: the virtio-mmio bus (microvm) and the
# virtio-pci bus (q35, the warm pool), the disk, the agent port, the network card,
# virtiofs (always loaded: a hotplugged share binds only to a loaded driver), the entropy
# device and the balloon (free-page reporting hands memory the guest freed back to the
# host). Dependencies are added.
WANTED = (
    "virtio_mmio",
    "virtio_pci",
    "virtio_blk",
    "virtio_console",
    "virtio_net",
    "virtiofs",
    "virtio_rng",
    "virtio_balloon",
)


def _modinfo_depends(data: bytes) -> list[str]:
    match = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
    if not match or not match.group(1):
        return []
    return [d.decode() for d in match.group(1).split(b",") if d]


def module_order(modules_root: Path, wanted: Iterable[str] = WANTED) -> list[tuple[str, Path]]:
    """(name, path) of the wanted modules and their dependencies, dependencies first."""
    index = {p.name.removesuffix(".ko").replace("-", "_"): p for p in modules_root.rglob("*.ko")}
    order: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        if name in chain:
            raise ValueError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        path = index.get(name)
        if path is None:
            return  # built into the kernel
        for dep in _modinfo_depends(path.read_bytes()):
            visit(dep, (*chain, name))
        seen.add(name)
        order.append((name, path))

    for name in wanted:
        visit(name, ())
    return order


class Cpio:
    """A newc ("070701") archive writer."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        encoded = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(encoded), 0]
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        self.buf.write(b"\0" * (-(110 + len(encoded)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))
        self.ino += 1

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def build_initramfs(busybox: Path, init_script: bytes, modules: list[tuple[str, Path]]) -> bytes:
    cpio = Cpio()
    for d in ("bin", "dev", "proc", "sys", "newroot", "modules"):
        cpio.directory(d)
    cpio.char_device("dev/console", 5, 1)  # so /init has a console before devtmpfs
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.file("init", init_script, 0o755)
    for name, path in modules:
        cpio.file(f"modules/{name}.ko", path.read_bytes())
    cpio.file("modules.order", "".join(f"{name}\n" for name, _ in modules).encode())
    return cpio.finish()
