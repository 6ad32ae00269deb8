"""Small file primitives every layer shares: an atomic write that never follows a link and
never leaves a half-written file, and an advisory lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: written to a new file in the same folder (O_EXCL,
    O_NOFOLLOW: a planted link or leftover is never written through), synced, then renamed
    over ``path``, so a reader sees the old or the new content, whatever the umask."""
    # os.urandom, not secrets: O_EXCL makes the name safe, and `secrets` would load
    # hashlib and random into every CLI start.
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[int]:
    """Hold an exclusive flock on ``path`` (created 0600 if missing) for the block; yields
    the descriptor. Released when the block ends or the process dies."""
    fd = take_lock(path, block=True)
    assert fd is not None
    try:
        yield fd
    finally:
        os.close(fd)  # closing drops the lock


def take_lock(path: Path, *, block: bool = False) -> int | None:
    """The flock on ``path`` (created 0600 if missing): its descriptor, which the caller
    closes to release it, or None when another process holds it and ``block`` is false.
    Only a lock on the file still at that path counts, so that a lock file may be
    unlinked by whoever holds it (golden.remove_locks): a waiter that gets the unlinked
    file's lock tries again on the path's new file (else two would hold "the" lock)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            now = path.lstat()
        except FileNotFoundError:
            now = None
        held = os.fstat(fd)
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)
