"""The one checked layer through which host code touches a tree that a guest (or a kit, or a
cloned repository) controls: the sandbox's share, the workspace, kit placement, the trash.

Every path is walked from the tree's root directory descriptor, one component at a time,
with ``O_NOFOLLOW``: a component that is a symlink (or was swapped for one since a scan)
fails the operation with :class:`UnsafePath` instead of being followed. Paths are never
resolved with ``realpath``; a link's target is judged by walking the real tree
(:meth:`SafeTree.link_stays_inside`). Trusted locations (the trash, the state folder) are
plain ``Path`` objects on the other side of each operation."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from sandkit.sync import fdcopy

MAX_LINK_HOPS = 40  # as the kernel's own limit on links followed in one lookup
TMP_PREFIX = fdcopy.TMP_PREFIX
_DIR_FLAGS = fdcopy.DIR_FLAGS


class UnsafePath(OSError):
    """A path that would leave the tree: a link or a non-directory where a directory
    was expected, or a name that is not a plain relative path."""

    def __init__(self, rel: str, why: str) -> None:
        super().__init__(errno.ELOOP, f"{rel}: {why}")
        self.rel = rel


def split(rel: str) -> list[str]:
    """The components of a tree-relative path; anything but plain names is refused."""
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", "..") or "\0" in part:
            raise UnsafePath(rel, "not a plain relative path")
    return parts


def clean_mode(mode: int, umask: int) -> int:
    """What a file arriving from a sandbox may have: permission bits under the user's
    umask; never setuid, setgid or sticky."""
    return mode & 0o777 & ~umask


def current_umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:  # noqa: PTH123
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


class SafeTree:
    """A directory tree reached only through descriptors from its root."""

    def __init__(self, root: Path, owner: tuple[int, int] | None = None) -> None:
        self.root = root
        self.owner = owner  # chown what we create here (root only)
        self._fd: int | None = None

    # -- descriptors ------------------------------------------------------------------------
    @property
    def fd(self) -> int:
        """The root's descriptor, opened on first use (the root itself is trusted: the
        workspace the user named, or a share folder sandkit made)."""
        if self._fd is None:
            self._fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def parent(self, rel: str, create: bool = False) -> Iterator[tuple[int, str]]:
        """(descriptor of the directory holding ``rel``, its last name). Missing
        directories are made when ``create``; a link on the way is an UnsafePath."""
        parts = split(rel)
        fd, owned = self.fd, False
        try:
            for i, name in enumerate(parts[:-1]):
                try:
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                        self._chown_at(fd, name)
                    nfd = self._open_dir(fd, name, "/".join(parts[: i + 1]))
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnsafePath(
                            rel, f"'{'/'.join(parts[: i + 1])}' is not a directory (a link?)"
                        ) from None
                    raise
                if owned:
                    os.close(fd)
                fd, owned = nfd, True
            yield fd, parts[-1]
        finally:
            if owned:
                os.close(fd)

    @contextlib.contextmanager
    def directory(self, rel: str, create: bool = False) -> Iterator[int]:
        """A descriptor on the directory ``rel`` ("" is the root), made when missing and
        ``create`` (mode 0755, as :meth:`parent` makes folders)."""
        if not rel:
            yield self.fd
            return
        with self.parent(rel, create) as (pfd, name):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=pfd)
                    self._chown_at(pfd, name)
            dfd = self._open_dir(pfd, name, rel)
        try:
            yield dfd
        finally:
            os.close(dfd)

    def open_dir(self, rel: str) -> int:
        """A descriptor of the directory at ``rel`` ("" the root), reached from the root
        without following a link (UnsafePath if one is on the way or at ``rel``)."""
        if not rel:
            return os.dup(self.fd)
        with self.parent(rel) as (pfd, name):
            return self._open_dir(pfd, name, rel)

    def _open_dir(self, dirfd: int, name: str, shown: str) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dirfd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(shown, "is not a directory (a link?)") from None
            raise

    def _chown_at(self, dirfd: int, name: str) -> None:
        if self.owner is not None:
            os.chown(name, *self.owner, dir_fd=dirfd, follow_symlinks=False)

    # -- reading ----------------------------------------------------------------------------
    def lstat(self, rel: str) -> os.stat_result | None:
        """What is at ``rel`` itself, or None (also when a parent is a link: nothing under
        a link is part of the tree)."""
        try:
            with self.parent(rel) as (fd, name):
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError, UnsafePath):
            return None

    def readlink(self, rel: str) -> str:
        with self.parent(rel) as (fd, name):
            return os.readlink(name, dir_fd=fd)

    def open_read(self, rel: str) -> int:
        """A descriptor on the regular file at ``rel`` (never a link, fifo or device)."""
        with self.parent(rel) as (fd, name):
            try:
                return fdcopy.open_file(fd, name)[0]
            except fdcopy.NotAFile as exc:
                raise UnsafePath(rel, str(exc.strerror)) from None

    def read_bytes(self, rel: str, limit: int = 1 << 20) -> bytes:
        rfd = self.open_read(rel)
        with os.fdopen(rfd, "rb") as f:
            return f.read(limit)

    def digest(self, rel: str) -> str:
        rfd = self.open_read(rel)
        with os.fdopen(rfd, "rb") as f:
            return hashlib.file_digest(f, "blake2b").hexdigest()

    def walk(
        self, start: str = "", prune: Callable[[str], bool] | None = None
    ) -> Iterator[tuple[str, os.stat_result]]:
        """Every entry below ``start`` (its own entry not included), links not followed:
        each directory is opened from its parent's descriptor with O_NOFOLLOW. Directories
        for which ``prune`` says yes are listed but not entered."""
        if start:
            try:
                with self.parent(start) as (pfd, name):
                    fd = self._open_dir(pfd, name, start)
            except (FileNotFoundError, NotADirectoryError, UnsafePath):
                return
        else:
            fd = os.dup(self.fd)
        yield from self._walk(fd, start, prune)

    def _walk(
        self, fd: int, base: str, prune: Callable[[str], bool] | None
    ) -> Iterator[tuple[str, os.stat_result]]:
        entries = []
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    try:
                        entries.append((entry.name, entry.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        continue  # gone since it was listed (a temporary file): not the rest
        except FileNotFoundError:
            pass
        try:
            for name, st in entries:
                rel = f"{base}/{name}" if base else name
                yield rel, st
                if stat.S_ISDIR(st.st_mode) and not (prune and prune(rel)):
                    try:
                        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except OSError:
                        continue  # swapped or gone since it was listed: not followed
                    yield from self._walk(child, rel, prune)
        finally:
            os.close(fd)

    def link_stays_inside(self, rel: str, target: str) -> bool:
        """Would a link at ``rel`` pointing at ``target`` resolve inside this tree, as the
        tree is now? Links met on the way are followed (in the tree, by reading them),
        so a chain of links that each look inside but together leave it is caught."""
        hops = [MAX_LINK_HOPS]

        def follow(at: list[str], target: str) -> list[str] | None:
            if target.startswith("/"):
                return None
            for part in target.split("/"):
                if part in ("", "."):
                    continue
                if part == "..":
                    if not at:
                        return None
                    at = at[:-1]
                    continue
                here = "/".join([*at, part])
                st = self.lstat(here) if here != rel else None
                if here == rel or (st is not None and stat.S_ISLNK(st.st_mode)):
                    hops[0] -= 1
                    if hops[0] < 0:
                        return None  # a loop: the kernel would refuse it too
                    inner = follow(at, target if here == rel else self.readlink(here))
                    if inner is None:
                        return None
                    at = inner
                else:
                    at = [*at, part]
            return at

        try:
            return follow(split(rel)[:-1], target) is not None
        except (OSError, ValueError):
            return False

    # -- writing ----------------------------------------------------------------------------
    def make_dir(self, rel: str, mode: int, replace: bool = True) -> None:
        with self.parent(rel, create=True) as (fd, name):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and not stat.S_ISDIR(st.st_mode):
                if not replace:
                    raise UnsafePath(rel, "is not a directory (a link?)")
                os.unlink(name, dir_fd=fd)
                st = None
            if st is None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=fd)
            dfd = self._open_dir(fd, name, rel)
            try:
                if replace or st is None:
                    os.fchmod(dfd, mode)
                if self.owner is not None:
                    os.fchown(dfd, *self.owner)
            finally:
                os.close(dfd)

    def write_atomic(
        self, rel: str, source: int | bytes, mode: int, *, keep_existing: bool = False
    ) -> tuple[str, os.stat_result]:
        """Write ``rel`` from a descriptor (read to its end) or bytes: a temporary file in
        the same directory, then a rename over whatever was there (a directory there is
        removed; a link is replaced, never written through). Returns (digest, stat)."""
        with self.parent(rel, create=True) as (fd, name):
            if keep_existing:
                try:
                    os.stat(name, dir_fd=fd, follow_symlinks=False)
                    raise FileExistsError(errno.EEXIST, "exists", rel)
                except FileNotFoundError:
                    pass
            tmp = fdcopy.temp_name(name)
            wfd = os.open(tmp, fdcopy.NEW_FLAGS, 0o600, dir_fd=fd)
            try:
                try:
                    if isinstance(source, bytes):
                        digest = hashlib.blake2b(source).hexdigest()
                        fdcopy.write_all(wfd, source)
                    else:
                        digest = fdcopy.copy_digest(source, wfd, os.fstat(source).st_size)[0]
                    os.fchmod(wfd, mode)
                    if self.owner is not None:
                        os.fchown(wfd, *self.owner)
                    st = os.fstat(wfd)
                finally:
                    os.close(wfd)
                if keep_existing:
                    os.link(tmp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
                    os.unlink(tmp, dir_fd=fd)
                else:
                    fdcopy.place(fd, tmp, name)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=fd)
                raise
            return digest, st

    def copy_from(self, other: SafeTree, rel: str, mode: int) -> tuple[str, os.stat_result]:
        """Copy the regular file at ``rel`` in ``other`` to ``rel`` here."""
        rfd = other.open_read(rel)
        try:
            return self.write_atomic(rel, rfd, mode)
        finally:
            os.close(rfd)

    def make_link(self, rel: str, target: str) -> None:
        with self.parent(rel, create=True) as (fd, name):
            tmp = fdcopy.temp_name(name)
            os.symlink(target, tmp, dir_fd=fd)
            try:
                if self.owner is not None:
                    os.chown(tmp, *self.owner, dir_fd=fd, follow_symlinks=False)
                self.clear_dir(fd, name)
                os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=fd)
                raise

    def chmod(self, rel: str, mode: int) -> None:
        """Change a regular file's or directory's mode (links have none to change)."""
        with self.parent(rel) as (fd, name):
            try:
                nfd = os.open(name, fdcopy.READ_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return
                raise
            try:
                os.fchmod(nfd, mode)
            finally:
                os.close(nfd)

    def remove(self, rel: str) -> None:
        """Remove ``rel`` (a whole directory too); what is missing is already removed."""
        try:
            with self.parent(rel) as (fd, name):
                self._remove_at(fd, name)
        except (FileNotFoundError, NotADirectoryError):
            pass

    @staticmethod
    def _remove_at(fd: int, name: str) -> None:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            # rmtree with dir_fd walks by descriptors and never follows links (3.11+).
            shutil.rmtree(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)

    def clear_dir(self, fd: int, name: str) -> None:
        """A real directory where a file or link is about to go: remove it first."""
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                shutil.rmtree(name, dir_fd=fd)

    def rename(self, rel: str, new: str) -> None:
        with self.parent(rel) as (fd, name), self.parent(new, create=True) as (nfd, nname):
            os.rename(name, nname, src_dir_fd=fd, dst_dir_fd=nfd)

    # -- from trusted places (the trash): sync/trashfs.py ---------------------------------
    def import_(self, rel: str, source: Path, *, move: bool, replace: bool = False) -> None:
        """Put the trusted ``source`` (file, link or directory) at ``rel``. Without
        ``replace`` an existing path is left alone (FileExistsError)."""
        from sandkit.sync.trashfs import import_

        import_(self, rel, source, move=move, replace=replace)

    def clean_temporaries(self) -> None:
        for rel, st in list(self.walk()):
            if rel.rsplit("/", 1)[-1].startswith(TMP_PREFIX) and not stat.S_ISDIR(st.st_mode):
                with contextlib.suppress(OSError):
                    self.remove(rel)
