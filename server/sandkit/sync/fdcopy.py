"""Copying one file between two directory descriptors, digest taken on the way: the
innermost loop of a sync, so it makes as few system calls as a copy can (one read of a
small file, no stat by name, a rename without looking first). Names are single path
components opened with ``O_NOFOLLOW``; the descriptors come from safefs."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat

CHUNK = 1 << 20
RANGE_FROM = 1 << 20  # files this big are copied in the kernel (copy_file_range, reflinks)
TMP_PREFIX = ".sandkit-tmp-"

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# Read-write: a big file copied in the kernel is hashed by reading the copy back.
NEW_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_RANGE = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF)


class NotAFile(OSError):
    """What was opened is a link, fifo, device or directory: not copied."""


def temp_name(name: str) -> str:
    """A fresh name beside ``name`` (random: the guest cannot make it first)."""
    return f"{TMP_PREFIX}{os.urandom(4).hex()}-{name}"[:250]


def write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)  # all of it, nearly always: no view to make
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def open_file(dirfd: int, name: str) -> tuple[int, os.stat_result]:
    """A descriptor on the regular file ``name`` in ``dirfd``, and its stat."""
    try:
        rfd = os.open(name, READ_FLAGS, dir_fd=dirfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAFile(errno.ELOOP, "is a link, not a file", name) from None
        raise
    st = os.fstat(rfd)
    if not stat.S_ISREG(st.st_mode):
        os.close(rfd)
        raise NotAFile(errno.EINVAL, "is not a regular file", name)
    return rfd, st


def copy_range(rfd: int, wfd: int) -> bool:
    """Copy ``rfd`` to its end into ``wfd`` in the kernel (a reflink where the file system
    has them); False, with both files as they were, where it cannot."""
    try:
        while os.copy_file_range(rfd, wfd, CHUNK):
            pass
    except OSError as exc:
        if exc.errno not in _NO_RANGE:
            raise
        os.lseek(rfd, 0, os.SEEK_SET)
        os.ftruncate(wfd, 0)
        os.lseek(wfd, 0, os.SEEK_SET)
        return False
    return True


def copy_digest(rfd: int, wfd: int, size: int = 0) -> tuple[str, bool]:
    """Copy ``rfd`` to its end into ``wfd``: (digest of what ``wfd`` now holds, whether
    that digest is also the source's, i.e. the bytes were read from it)."""
    digest = hashlib.blake2b()
    if size >= RANGE_FROM and copy_range(rfd, wfd):
        # The copy is this process's own file: hashing it is one read, and the digest is
        # of what the journal will say is there.
        offset = 0
        while chunk := os.pread(wfd, CHUNK, offset):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest(), False
    want = min(size + 1, CHUNK)  # a short read of a regular file is its end: no extra read
    while chunk := os.read(rfd, want):
        digest.update(chunk)
        write_all(wfd, chunk)
        if len(chunk) < want:
            break
        want = CHUNK
    return digest.hexdigest(), True


def place(dirfd: int, tmp: str, name: str) -> None:
    """Rename ``tmp`` over ``name`` in ``dirfd``; a real directory there is removed first
    (a link there is replaced, never followed)."""
    try:
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=dirfd)  # by descriptors, links not followed
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)


def copy_at(
    src: int, dst: int, name: str, mode: int, owner: tuple[int, int] | None
) -> tuple[str, os.stat_result, os.stat_result, bool]:
    """Copy the regular file ``name`` from the directory ``src`` to ``dst`` atomically
    (a temporary file renamed over it). Returns (digest, the source's stat, the copy's
    stat, whether the digest was read from the source)."""
    rfd, sst = open_file(src, name)
    try:
        tmp = temp_name(name)
        # Made with its mode (the umask may take bits away: then fchmod puts them back).
        wfd = os.open(tmp, NEW_FLAGS, mode & 0o777, dir_fd=dst)
        try:
            try:
                digest, from_source = copy_digest(rfd, wfd, sst.st_size)
                dst_st = os.fstat(wfd)  # its ino, size and mtime stay true below
                if stat.S_IMODE(dst_st.st_mode) != mode:
                    os.fchmod(wfd, mode)
                if owner is not None:  # after the mode, as write_atomic does
                    os.fchown(wfd, *owner)
            finally:
                os.close(wfd)
            place(dst, tmp, name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dst)
            raise
    finally:
        os.close(rfd)
    return digest, sst, dst_st, from_source
