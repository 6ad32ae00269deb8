"""Watching both sides of the sync without ever following a link.

watchfiles' backend (notify) follows symlinks when it adds its recursive watches: a loop
the guest made (``d/u1 -> ..``) silently stopped every later event from the share, and a
link to ``/`` would have it walk the host's whole filesystem. The host's workspace is no
different: the sync copies the guest's harmless links there as links, and once watchfiles
had followed that loop on the host, the user's edits stopped reaching the sandbox. So
each directory of either tree is watched on its own, found by walking the tree through
safefs, and added with ``IN_DONT_FOLLOW | IN_ONLYDIR``: a link is never watched through.
Ignored folders (``node_modules/``...) are not watched at all.

When the kernel refuses a watch (``fs.inotify.max_user_watches`` reached) or a whole
inotify instance (``max_user_instances``), a change there would go unseen: the sync then
also makes a full pass whenever it has been quiet for a while, and says so in its log."""

from __future__ import annotations

import asyncio
import errno
import functools
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from inotify_simple import INotify, flags

from sandkit.logs import logger
from sandkit.sync.safefs import SafeTree

if TYPE_CHECKING:
    from sandkit.sync.engine import SyncEngine

log = logger(__name__)

DEBOUNCE_MS = 30  # changes closer than this are one batch
IDLE_TICK = 0.25  # seconds without changes after which deferred deletions are looked at
# With folders left unwatched, a full pass this often, or ten times as long as the last
# pass took (a pass must not become the sync's whole work).
POLL_SECONDS = 2.0

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
    """inotify over every directory of ``tree`` but those ``prune`` says to leave out;
    ``read()`` gives the paths changed."""

    def __init__(
        self,
        tree: SafeTree,
        prune: Callable[[str], bool] | None = None,
        max_watches: int | None = None,
    ) -> None:
        self.tree = tree
        self.prune = prune
        self.max_watches = max_watches  # None: as many as the kernel gives
        self.inotify = INotify()
        self.dirs: dict[int, str] = {}  # watch descriptor -> tree-relative directory
        self.incomplete = False  # a folder could not be watched: only a full pass sees it
        self.rewatch()

    @property
    def fd(self) -> int:
        return int(self.inotify.fileno())

    def rewatch(self) -> None:
        """Watch every directory as the tree is now (after a directory moved, its
        watches keep their descriptors but not their paths)."""
        self.dirs.clear()
        self._watch("")
        self._watch_below("")

    def _watch_below(self, start: str, seen: set[str] | None = None) -> None:
        """Watch every directory below ``start``; each path found goes into ``seen``."""
        for rel, st in self.tree.walk(start, prune=self.prune):
            if seen is not None:
                seen.add(rel)
            if stat.S_ISDIR(st.st_mode) and not (self.prune and self.prune(rel)):
                self._watch(rel)

    def _watch(self, rel: str) -> None:
        try:
            if self.max_watches is not None and len(self.dirs) >= self.max_watches:
                raise OSError(errno.ENOSPC, "watch limit")
            wd = self.inotify.add_watch(self.tree.root / rel if rel else self.tree.root, MASK)
        except OSError as exc:  # gone, or a link now (refused), or out of watches
            if exc.errno == errno.ENOSPC and not self.incomplete:
                self.incomplete = True
                log.warning(
                    "out of inotify watches at %s/%s: changes there are found by a full pass "
                    "every few seconds; raise fs.inotify.max_user_watches (sysctl) to watch "
                    "every folder",
                    self.tree.root,
                    rel,
                )
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
                if event.mask & (flags.CREATE | flags.MOVED_TO) and not (
                    self.prune and self.prune(rel)
                ):
                    # What was made in it before its watch existed is seen now.
                    self._watch(rel)
                    self._watch_below(rel, out)
        if moved_dir:
            self.rewatch()
        return out

    def close(self) -> None:
        self.inotify.close()


def _forward(watcher: TreeWatcher, changed: asyncio.Queue[set[str] | None]) -> None:
    changed.put_nowait(watcher.read())


async def run(
    engine: SyncEngine,
    stop: asyncio.Event,
    ready: asyncio.Event | None,
    max_watches: int | None = None,
) -> None:
    """Sync until ``stop`` is set: both sides' watchers first (neither follows a link:
    TreeWatcher), then a full pass, which finds what changed before they watched, then
    batches of changes; full passes in quiet moments too when a folder is unwatched."""
    engine.host.clean_temporaries()
    engine.share.clean_temporaries()
    loop = asyncio.get_running_loop()
    changed: asyncio.Queue[set[str] | None] = asyncio.Queue()
    watchers: list[TreeWatcher] = []
    polling = False
    try:
        for side in (engine.share, engine.host):
            prune = functools.partial(side.ignore, is_dir=True)
            try:
                watcher = await asyncio.to_thread(TreeWatcher, side.tree, prune, max_watches)
            except OSError as exc:  # EMFILE: fs.inotify.max_user_instances
                log.warning(
                    "cannot watch %s (%s): its changes are found by a full pass every few "
                    "seconds; raise fs.inotify.max_user_instances (sysctl)",
                    side.root,
                    exc.strerror,
                )
                polling = True
                continue
            watchers.append(watcher)
            loop.add_reader(watcher.fd, _forward, watcher, changed)
        started = time.monotonic()
        await asyncio.to_thread(engine.sync)
        last_pass, took = time.monotonic(), time.monotonic() - started
        if ready is not None:
            ready.set()
        while not stop.is_set():
            try:
                first = await asyncio.wait_for(changed.get(), IDLE_TICK)
            except TimeoutError:  # a quiet moment: deferred deletions may be due
                unwatched = polling or any(w.incomplete for w in watchers)
                if unwatched and time.monotonic() - last_pass >= max(POLL_SECONDS, 10 * took):
                    started = time.monotonic()
                    report = await asyncio.to_thread(engine.sync)
                    last_pass, took = time.monotonic(), time.monotonic() - started
                    if report.applied:
                        engine.emit("synced", count=report.applied)
                    continue
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
        for watcher in watchers:
            loop.remove_reader(watcher.fd)
            watcher.close()
        stop.set()
