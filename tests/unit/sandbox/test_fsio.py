"""fsio: the atomic write (never through a link, 0600 whatever the umask, nothing left
behind) and the lock."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from sandkit.fsio import locked, write_atomic


def test_write_atomic_replaces_the_file_with_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_atomic(path, b"new")
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_atomic(path, b"public", mode=0o644)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp left


def test_write_atomic_replaces_a_link_and_never_writes_through_it(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    link = tmp_path / "state.json"
    link.symlink_to(target)
    write_atomic(link, b"mine")
    assert target.read_text() == "keep"
    assert not link.is_symlink() and link.read_bytes() == b"mine"


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "missing-folder" / "state.json"
    with pytest.raises(FileNotFoundError):
        write_atomic(path, b"x")
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "f").write_text("old")
    with pytest.raises(TypeError):
        write_atomic(folder / "f", "not bytes")  # type: ignore[arg-type]
    assert [p.name for p in folder.iterdir()] == ["f"] and (folder / "f").read_text() == "old"


def test_locked_excludes_another_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with locked(path):
        other = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    other = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the block
    finally:
        os.close(other)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
