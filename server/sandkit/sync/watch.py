"""Watching the share without ever following its links.

watchfiles' backend (notify) follows symlinks when it adds its recursive watches: a loop
the guest made (``d/u1 -> ..``) silently stopped every later event from the share, and a
link to ``/`` would have it walk the host's whole filesystem. Here each directory of the
tree is watched on its own, found by walking the tree through safefs, and added with
``IN_DONT_FOLLOW | IN_ONLYDIR``: a link is never watched through."""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from inotify_simple import INotify, flags
from watchfiles import awatch

from sandkit.logs import logger
from sandkit.sync.safefs import SafeTree
from sandkit.tasks import spawn

if TYPE_CHECKING:
    from sandkit.sync.engine import SyncEngine

log = logger(__name__)

DEBOUNCE_MS = 30  # changes closer than this are one batch
IDLE_TICK = 0.25  # seconds without changes after which deferred deletions are looked at

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


def _relative(root: Path, changed: Iterable[str]) -> set[str]:
    out = set()
    for raw in changed:
        path = Path(raw)
        if path.is_relative_to(root) and path != root:
            out.add(path.relative_to(root).as_posix())
    return out


async def _watch_host(
    root: Path, stop: asyncio.Event, changed: asyncio.Queue[set[str] | None]
) -> None:
    """The user's workspace, with watchfiles (its links are the user's own)."""
    async for changes in awatch(
        root, watch_filter=None, debounce=DEBOUNCE_MS, step=10, stop_event=stop, rust_timeout=250
    ):
        if paths := _relative(root, (path for _, path in changes)):
            changed.put_nowait(paths)


async def run(engine: SyncEngine, stop: asyncio.Event, ready: asyncio.Event | None) -> None:
    """Sync until ``stop`` is set: a full pass first, then batches of changes from both
    watchers (the share's never follows the guest's links: TreeWatcher)."""
    engine.host.clean_temporaries()
    engine.share.clean_temporaries()
    await asyncio.to_thread(engine.sync)
    loop = asyncio.get_running_loop()
    changed: asyncio.Queue[set[str] | None] = asyncio.Queue()
    share_watch = await asyncio.to_thread(TreeWatcher, engine.share.tree)
    loop.add_reader(share_watch.fd, lambda: changed.put_nowait(share_watch.read()))
    host_watch = spawn(_watch_host(engine.host.root, stop, changed), "sync-watch-host")
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            try:
                first = await asyncio.wait_for(changed.get(), IDLE_TICK)
            except TimeoutError:  # a quiet moment: deferred deletions may be due
                if engine.deferred or engine.deferred_writes:
                    report = await asyncio.to_thread(engine.tick)
                    if report.applied:
                        engine.emit("synced", count=report.applied)
                continue
            await asyncio.sleep(DEBOUNCE_MS / 1000)  # let a burst of changes gather
            batch = [first]
            while not changed.empty():
                batch.append(changed.get_nowait())
            paths = None if None in batch else {p for b in batch if b for p in b}
            if paths is not None and not paths:
                continue
            try:
                report = await asyncio.to_thread(engine.sync, paths)
            except OSError as exc:  # a path vanished mid-batch: a full pass settles it
                log.warning("sync batch failed (%s); rescanning", exc)
                report = await asyncio.to_thread(engine.sync)
            if report.applied:
                engine.emit("synced", count=report.applied)
    finally:
        loop.remove_reader(share_watch.fd)
        share_watch.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await host_watch
