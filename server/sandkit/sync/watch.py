"""Watching the share without ever following its links.

watchfiles' backend (notify) follows symlinks when it adds its recursive watches: a loop
the guest made (``d/u1 -> ..``) silently stopped every later event from the share, and a
link to ``/`` would have it walk the host's whole filesystem. Here each directory of the
tree is watched on its own, found by walking the tree through safefs, and added with
``IN_DONT_FOLLOW | IN_ONLYDIR``: a link is never watched through."""

from __future__ import annotations

import logging
import stat

from inotify_simple import INotify, flags

from sandkit.sync.safefs import SafeTree

log = logging.getLogger(__name__)

MASK = (
    flags.CREATE
    | flags.DELETE
    | flags.MODIFY
    | flags.CLOSE_WRITE
    | flags.MOVED_FROM
    | flags.MOVED_TO
    | flags.ATTRIB
    | flags.DONT_FOLLOW
    | flags.ONLYDIR
)


class TreeWatcher:
    """inotify over every directory of ``tree``; ``read()`` gives the paths changed."""

    def __init__(self, tree: SafeTree) -> None:
        self.tree = tree
        self.inotify = INotify()
        self.dirs: dict[int, str] = {}  # watch descriptor -> tree-relative directory
        self._warned = False
        self.rewatch()

    @property
    def fd(self) -> int:
        return int(self.inotify.fileno())

    def rewatch(self) -> None:
        """Watch every directory as the tree is now (after a directory moved, its
        watches keep their descriptors but not their paths)."""
        self.dirs.clear()
        self._watch("")
        for rel, st in self.tree.walk(""):
            if stat.S_ISDIR(st.st_mode):
                self._watch(rel)

    def _watch(self, rel: str) -> None:
        try:
            wd = self.inotify.add_watch(self.tree.root / rel if rel else self.tree.root, MASK)
        except OSError as exc:  # gone, or a link now (refused), or out of watches
            if exc.errno == 28 and not self._warned:  # ENOSPC: fs.inotify.max_user_watches
                self._warned = True
                log.warning("out of inotify watches: raise fs.inotify.max_user_watches")
            return
        self.dirs[wd] = rel

    def read(self) -> set[str] | None:
        """Paths changed since the last read; None when the kernel's queue overflowed
        (then only a full scan knows what changed)."""
        out: set[str] = set()
        moved_dir = False
        for event in self.inotify.read(timeout=0):
            if event.mask & flags.Q_OVERFLOW:
                self.rewatch()
                return None
            if event.mask & flags.IGNORED:
                self.dirs.pop(event.wd, None)
                continue
            base = self.dirs.get(event.wd)
            if base is None or not event.name:
                continue
            rel = f"{base}/{event.name}" if base else event.name
            out.add(rel)
            if event.mask & flags.ISDIR:
                if event.mask & (flags.MOVED_FROM | flags.MOVED_TO):
                    moved_dir = True
                if event.mask & (flags.CREATE | flags.MOVED_TO):
                    # What was made in it before its watch existed is seen now.
                    self._watch(rel)
                    for sub, st in self.tree.walk(rel):
                        out.add(sub)
                        if stat.S_ISDIR(st.st_mode):
                            self._watch(sub)
        if moved_dir:
            self.rewatch()
        return out

    def close(self) -> None:
        self.inotify.close()
