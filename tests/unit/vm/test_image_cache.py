"""A partial or damaged image is never booted."""

from __future__ import annotations

import json
from pathlib import Path

from sandkit.vm.image import FILES, extract_vmlinux, load


def make(path: Path) -> None:
    path.mkdir()
    for name in FILES:
        (path / name).write_bytes(b"x" * 10)
    (path / "manifest.json").write_text(
        json.dumps({"key": "k", "kernel_release": "6.1", "files": dict.fromkeys(FILES, 10)})
    )


def test_complete_image_loads(tmp_path: Path) -> None:
    make(tmp_path / "img")
    image = load(tmp_path / "img")
    assert (
        image is not None and image.kernel_release == "6.1" and image.rootfs.name == "rootfs.ext4"
    )


def test_missing_manifest_truncated_file_or_bad_json_is_rejected(tmp_path: Path) -> None:
    for damage in ("manifest", "truncate", "json", "missing"):
        root = tmp_path / damage
        make(root)
        if damage == "manifest":
            (root / "manifest.json").unlink()
        elif damage == "truncate":
            (root / "rootfs.ext4").write_bytes(b"x")
        elif damage == "json":
            (root / "manifest.json").write_text("{")
        else:
            (root / "vmlinux").unlink()
        assert load(root) is None, damage


def test_extract_vmlinux_falls_back_to_the_bzimage(tmp_path: Path) -> None:
    assert extract_vmlinux(b"no magic here", tmp_path) == b"no magic here"
    broken = b"head\x02\x21\x4c\x18garbage"
    assert extract_vmlinux(broken, tmp_path) == broken
