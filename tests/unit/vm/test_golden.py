"""The golden snapshot's pure parts: its key covers every input a restore depends on (and
none of the per-VM paths), the sparse digest sees every byte, and a golden whose files
changed on disk is refused with the reason."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from sandkit.vm import golden
from sandkit.vm.image import Image


def image(tmp_path: Path, key: str = "img1") -> Image:
    return Image(key=key, path=tmp_path, kernel_release="6.1")


@pytest.fixture(autouse=True)
def fixed_qemu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(golden, "qemu_version", lambda: "QEMU emulator version 7.2.0")


def key(tmp_path: Path, **changes: object) -> str:
    args: dict[str, object] = {
        "image": image(tmp_path),
        "cpus": 2,
        "memory_mib": 512,
        "accel": "tcg",
    }
    args.update(changes)
    return golden.golden_key(golden.key_inputs(**args))  # type: ignore[arg-type]


def test_key_covers_image_shape_accel_and_qemu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = key(tmp_path)
    assert key(tmp_path) == base
    others = {
        key(tmp_path, image=image(tmp_path, "img2")),
        key(tmp_path, cpus=1),
        key(tmp_path, memory_mib=1024),
        key(tmp_path, accel="kvm"),
    }
    monkeypatch.setattr(golden, "qemu_version", lambda: "QEMU emulator version 8.0.0")
    others.add(key(tmp_path))
    assert base not in others and len(others) == 5


def test_a_rebuilt_image_of_the_same_key_needs_its_own_golden(tmp_path: Path) -> None:
    # Two builds of one key differ in their bytes (the ext4's UUID, at least): a golden
    # saved on one would restore a guest whose page cache disagrees with the other's disk.
    first = Image(key="img1", path=tmp_path, kernel_release="6.1", build="a" * 32)
    again = Image(key="img1", path=tmp_path, kernel_release="6.1", build="b" * 32)
    assert key(tmp_path, image=first) != key(tmp_path, image=again)


def test_key_leaves_out_the_per_vm_paths(tmp_path: Path) -> None:
    inputs = golden.key_inputs(image(tmp_path), 2, 512, "tcg")
    text = json.dumps(inputs)
    assert "@disk" in text and "@ram" in text and "@agent" in text and "@proxy" in text
    assert "-incoming" not in text  # the golden boots; clones add it


def sparse(path: Path, chunks: dict[int, bytes], size: int) -> None:
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in chunks.items():
            f.seek(offset)
            f.write(data)


def test_digest_sees_data_offsets_and_size(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    sparse(a, {1 << 20: b"x" * 4096}, 8 << 20)
    sparse(b, {1 << 20: b"x" * 4096}, 8 << 20)
    assert golden.file_digest(a) == golden.file_digest(b)
    sparse(b, {1 << 20: b"x" * 4095 + b"y"}, 8 << 20)  # one byte
    assert golden.file_digest(a) != golden.file_digest(b)
    sparse(b, {2 << 20: b"x" * 4096}, 8 << 20)  # same bytes elsewhere
    assert golden.file_digest(a) != golden.file_digest(b)
    sparse(b, {1 << 20: b"x" * 4096}, 9 << 20)  # longer
    assert golden.file_digest(a) != golden.file_digest(b)
    sparse(b, {}, 0)
    assert golden.file_digest(b) != golden.file_digest(a)


def make_golden(folder: Path, key: str) -> golden.Golden:
    folder.mkdir()
    g = golden.Golden(folder)
    sparse(g.path("ram"), {4096: os.urandom(8192)}, 64 << 20)
    g.path("state.bin").write_bytes(os.urandom(1000))
    g.path("disk.qcow2").write_bytes(b"QFI\xfb" + os.urandom(100))
    digests = {n: golden.file_digest(g.path(n)) for n in golden.FILES}
    g.manifest.write_text(json.dumps({"key": key, "digests": digests, "built": 1.0}))
    return g


def test_a_golden_is_checked_before_use(tmp_path: Path) -> None:
    assert golden.Golden(tmp_path / "none").problem("k") == "it was never built"
    g = make_golden(tmp_path / "g", "k")
    assert g.problem("k") is None
    assert g.problem("other") == "it was built for other inputs"
    with g.path("ram").open("r+b") as f:  # one flipped byte in the RAM file
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 1]))
    assert g.problem("k") == "ram does not match its digest (corrupt)"
    g.path("ram").unlink()
    assert g.problem("k") == "ram is unreadable (No such file or directory)"
    g.manifest.write_text("[1]")
    assert g.problem("k") == "its manifest is not a golden's"
    g.manifest.write_text("{")
    assert str(g.problem("k")).startswith("its manifest is unreadable")


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_sweep_removes_only_what_dead_processes_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ram, root = tmp_path / "shm", tmp_path / "golden"
    ram.mkdir()
    root.mkdir()
    monkeypatch.setattr(golden, "ram_dir", lambda: ram)
    monkeypatch.setattr(golden, "golden_root", lambda: root)
    dead, alive = dead_pid(), os.getpid()
    for name in (f"pool-2c512m-ab12cd-{dead}.ram", f"golden-k1-{dead}.ram"):
        (ram / name).write_bytes(b"x")
    (ram / f"pool-2c512m-ef34ab-{alive}.ram").write_bytes(b"x")
    (root / f"k1.build-{dead}").mkdir()
    (root / f"k1.old-{dead}").mkdir()
    (root / f"k1.build-{alive}").mkdir()
    (root / "k1").mkdir()
    removed = {p.name for p in golden.sweep()}
    assert removed == {
        f"pool-2c512m-ab12cd-{dead}.ram",
        f"golden-k1-{dead}.ram",
        f"k1.build-{dead}",
        f"k1.old-{dead}",
    }
    assert {p.name for p in ram.iterdir()} == {f"pool-2c512m-ef34ab-{alive}.ram"}
    assert {p.name for p in root.iterdir()} == {f"k1.build-{alive}", "k1"}


def test_goldens_are_listed_and_removed_by_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(golden, "golden_root", lambda: tmp_path)
    for key, img in (("k1", "img1"), ("k2", "img2")):
        g = make_golden(tmp_path / key, key)
        manifest = json.loads(g.manifest.read_text())
        manifest.update(shape="2c512m", inputs={"image": img})
        g.manifest.write_text(json.dumps(manifest))
    listed = golden.goldens()
    assert [(g["key"], g["shape"], g["image"]) for g in listed] == [
        ("k1", "2c512m", "img1"),
        ("k2", "2c512m", "img2"),
    ]
    assert all(isinstance(g["mib"], float) for g in listed)
    assert golden.remove(keep_images={"img1"}) == 1
    assert [g["key"] for g in golden.goldens()] == ["k1"]
    assert golden.remove() == 1 and golden.goldens() == []


def test_under_kvm_the_key_names_the_host(tmp_path: Path) -> None:
    tcg = golden.key_inputs(image(tmp_path), 2, 512, "tcg")
    kvm = golden.key_inputs(image(tmp_path), 2, 512, "kvm")
    assert "host" not in tcg  # TCG emulates the same CPU everywhere
    assert str(kvm["host"]).startswith(os.uname().release + "/")


def test_a_shared_ram_folder_must_be_private(tmp_path: Path) -> None:
    from sandkit.errors import SandkitError
    from sandkit.paths import ram_dir

    made = ram_dir(tmp_path)
    assert made == tmp_path / f"sandkit-{os.getuid()}" and (made.stat().st_mode & 0o777) == 0o700
    made.chmod(0o755)  # e.g. made by someone else, open to others
    with pytest.raises(SandkitError, match="not a private folder"):
        ram_dir(tmp_path)
    made.rmdir()
    made.symlink_to(tmp_path)  # a link to somewhere else
    with pytest.raises(SandkitError, match="not a private folder"):
        ram_dir(tmp_path)
