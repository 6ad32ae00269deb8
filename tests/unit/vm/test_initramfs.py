from __future__ import annotations

from pathlib import Path

import pytest

from sandkit.vm.initramfs import Cpio, build_initramfs, module_order


def ko(root: Path, name: str, depends: str) -> None:
    path = root / "kernel" / "drivers" / f"{name}.ko"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x7fELF junk\0license=GPL\0depends=" + depends.encode() + b"\0vermagic=6.1\0"
    )


def test_module_order_puts_dependencies_first(tmp_path: Path) -> None:
    ko(tmp_path, "virtio_ring", "")
    ko(tmp_path, "virtio", "virtio_ring")
    ko(tmp_path, "virtio_mmio", "virtio,virtio_ring")
    ko(tmp_path, "virtio_blk", "virtio,virtio_ring")
    ko(tmp_path, "virtiofs", "fuse,virtio,virtio_ring")
    ko(tmp_path, "fuse", "")
    names = [
        n for n, _ in module_order(tmp_path, ["virtio_mmio", "virtio_blk", "virtiofs", "builtin"])
    ]
    assert names == ["virtio_ring", "virtio", "virtio_mmio", "virtio_blk", "fuse", "virtiofs"]


def test_cycle(tmp_path: Path) -> None:
    ko(tmp_path, "a", "b")
    ko(tmp_path, "b", "a")
    with pytest.raises(ValueError, match="cycle"):
        module_order(tmp_path, ["a"])


def test_cpio_is_newc_and_aligned(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"BB")
    ko(tmp_path, "virtio_ring", "")
    data = build_initramfs(busybox, b"#!/bin/busybox sh\n", module_order(tmp_path, ["virtio_ring"]))
    assert data.startswith(b"070701") and data.endswith(b"\0") and len(data) % 4 == 0
    assert b"TRAILER!!!" in data and b"modules/virtio_ring.ko" in data and b"dev/console" in data
    offset, names = 0, []
    while True:  # walk the archive as the kernel does
        header = data[offset : offset + 110]
        size, namesize = int(header[54:62], 16), int(header[94:102], 16)
        name = data[offset + 110 : offset + 110 + namesize - 1].decode()
        names.append(name)
        offset += 110 + namesize
        offset += -offset % 4
        offset += size + (-size % 4)
        if name == "TRAILER!!!":
            break
    assert names[:3] == ["bin", "dev", "proc"] and "init" in names and "modules.order" in names
    assert Cpio().finish().startswith(b"070701")
