"""Moving whole paths between a checked tree and a trusted place (the trash, a saved
version): ``SafeTree.export`` and ``SafeTree.import_``. The tree's side is walked through
safefs (``O_NOFOLLOW`` from its root); the trusted side is a plain path that sandkit made."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.sync.fdcopy import CHUNK, NEW_FLAGS, READ_FLAGS, copy_range, write_all

if TYPE_CHECKING:
    from sandkit.sync.safefs import SafeTree

_MOVED_ELSEWHERE = (errno.EXDEV, errno.ENOTEMPTY, errno.EEXIST)


def export(tree: SafeTree, rel: str, dest: Path, *, move: bool) -> bool:
    """Copy (or move) ``rel`` and everything below it to the trusted path ``dest``, links
    kept as links. Returns False if nothing is at ``rel``."""
    st = tree.lstat(rel)
    if st is None:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if move:
        try:
            with tree.parent(rel) as (fd, name):
                os.rename(name, dest, src_dir_fd=fd)
            return True
        except OSError as exc:
            # Another file system, or a folder already there (its files trashed one by
            # one in the same step, a rm -rf): copy into it, then remove.
            if exc.errno not in _MOVED_ELSEWHERE:
                raise
    _export_one(tree, rel, st, dest)
    if stat.S_ISDIR(st.st_mode):
        for sub, sst in tree.walk(rel):
            _export_one(tree, sub, sst, dest / os.path.relpath(sub, rel))
    if move:
        tree.remove(rel)
    return True


def _export_one(tree: SafeTree, rel: str, st: os.stat_result, dest: Path) -> None:
    if stat.S_ISDIR(st.st_mode):
        dest.mkdir(mode=0o700, exist_ok=True)
    elif stat.S_ISLNK(st.st_mode):
        dest.symlink_to(tree.readlink(rel))
    elif stat.S_ISREG(st.st_mode):
        rfd = tree.open_read(rel)
        try:
            wfd = os.open(dest, NEW_FLAGS, 0o600)
            try:
                if not copy_range(rfd, wfd):
                    while chunk := os.read(rfd, CHUNK):
                        write_all(wfd, chunk)
                os.fchmod(wfd, stat.S_IMODE(st.st_mode) & 0o777)
            finally:
                os.close(wfd)
        finally:
            os.close(rfd)


def import_(tree: SafeTree, rel: str, source: Path, *, move: bool, replace: bool) -> None:
    """Put the trusted ``source`` (file, link or directory) at ``rel``. Without ``replace``
    an existing path is left alone (FileExistsError)."""
    st = source.lstat()
    if not replace and tree.lstat(rel) is not None and not stat.S_ISDIR(st.st_mode):
        raise FileExistsError(errno.EEXIST, "exists", rel)
    if move and (not stat.S_ISDIR(st.st_mode) or tree.lstat(rel) is None):
        try:
            with tree.parent(rel, create=True) as (fd, name):
                if replace:
                    tree.clear_dir(fd, name)
                os.rename(source, name, dst_dir_fd=fd)
            return
        except OSError as exc:
            if exc.errno not in _MOVED_ELSEWHERE:
                raise
    _import_one(tree, rel, source, st)
    if stat.S_ISDIR(st.st_mode):
        for base, dirs, files in os.walk(source):  # trusted: links are not followed
            for name in [*dirs, *files]:
                path = Path(base) / name
                sub = f"{rel}/{path.relative_to(source).as_posix()}"
                _import_one(tree, sub, path, path.lstat())
    if move:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(source)
        else:
            source.unlink()


def _import_one(tree: SafeTree, rel: str, source: Path, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        tree.make_dir(rel, stat.S_IMODE(st.st_mode) & 0o777, replace=False)
    elif stat.S_ISLNK(st.st_mode):
        tree.make_link(rel, str(source.readlink()))
    elif stat.S_ISREG(st.st_mode):
        rfd = os.open(source, READ_FLAGS)
        try:
            tree.write_atomic(rel, rfd, stat.S_IMODE(st.st_mode) & 0o777)
        finally:
            os.close(rfd)
