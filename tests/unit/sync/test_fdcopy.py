"""The innermost copy of a sync, on real files: every byte arrives and the digest is of
what arrived, whatever the size (one short read, many chunks, a copy in the kernel), a
size hint that is wrong, and nothing but a regular file is read or written through."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandkit.sync.fdcopy import (
    CHUNK,
    DIR_FLAGS,
    RANGE_FROM,
    TMP_PREFIX,
    NotAFile,
    copy_at,
    copy_digest,
)


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path, int, int]]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    sfd, dfd = os.open(src, DIR_FLAGS), os.open(dst, DIR_FLAGS)
    yield src, dst, sfd, dfd
    os.close(sfd)
    os.close(dfd)


@pytest.mark.parametrize(
    "size", [0, 1, 4097, CHUNK - 1, CHUNK, CHUNK + 1, RANGE_FROM + 7, 2 * CHUNK + 3]
)
@pytest.mark.parametrize("hint", ["exact", "none", "too small", "too big"])
def test_every_byte_arrives_and_the_digest_is_of_them(tmp_path: Path, size: int, hint: str) -> None:
    data = os.urandom(size)
    (tmp_path / "a").write_bytes(data)
    given = {"exact": size, "none": 0, "too small": size // 2, "too big": size + 10}[hint]
    rfd = os.open(tmp_path / "a", os.O_RDONLY)
    wfd = os.open(tmp_path / "b", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        digest, from_source = copy_digest(rfd, wfd, given)
    finally:
        os.close(rfd)
        os.close(wfd)
    assert (tmp_path / "b").read_bytes() == data
    assert digest == hashlib.blake2b(data).hexdigest()
    if given < RANGE_FROM:
        assert from_source  # read from the source: its digest too


def test_a_copy_lands_whole_with_its_mode_and_no_temporary_left(
    dirs: tuple[Path, Path, int, int],
) -> None:
    src, dst, sfd, dfd = dirs
    (src / "f").write_bytes(b"hello")
    (src / "f").chmod(0o775)  # wider than a usual umask
    (dst / "f").mkdir()  # a folder where the file goes: replaced
    (dst / "f" / "inner").write_text("x")
    digest, sst, st, _ = copy_at(sfd, dfd, "f", 0o775, None)
    assert (dst / "f").read_bytes() == b"hello"
    assert (dst / "f").stat().st_mode & 0o7777 == 0o775
    assert st.st_ino == (dst / "f").stat().st_ino and sst.st_ino == (src / "f").stat().st_ino
    assert digest == hashlib.blake2b(b"hello").hexdigest()
    assert not [p for p in dst.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_a_link_at_the_destination_is_replaced_never_written_through(
    dirs: tuple[Path, Path, int, int], tmp_path: Path
) -> None:
    src, dst, sfd, dfd = dirs
    outside = tmp_path / "outside"
    outside.write_text("untouched")
    (src / "f").write_text("new")
    (dst / "f").symlink_to(outside)
    copy_at(sfd, dfd, "f", 0o644, None)
    assert not (dst / "f").is_symlink() and (dst / "f").read_text() == "new"
    assert outside.read_text() == "untouched"


def test_only_a_regular_file_is_read(dirs: tuple[Path, Path, int, int], tmp_path: Path) -> None:
    src, dst, sfd, dfd = dirs
    (tmp_path / "secret").write_text("s")
    (src / "link").symlink_to(tmp_path / "secret")
    os.mkfifo(src / "fifo")
    (src / "dir").mkdir()
    for name in ("link", "fifo", "dir"):
        with pytest.raises(NotAFile):
            copy_at(sfd, dfd, name, 0o644, None)
    assert list(dst.iterdir()) == []
