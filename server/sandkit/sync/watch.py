"""Watching both sides of the sync without ever following a link.

watchfiles' backend (notify) follows symlinks when it adds its recursive watches: a loop
the guest made (``d/u1 -> ..``) silently stopped every later event from the share, and a
link to ``/`` would have it walk the host's whole filesystem. The host's workspace is no
different: the sync copies the guest's harmless links there as links, and once watchfiles
had followed that loop on the host, the user's edits stopped reaching the sandbox. So
each directory of either tree is watched on its own, found by walking the tree through
safefs (``O_NOFOLLOW`` from its parent's descriptor) and watched through that descriptor:
a link is never watched through. Ignored folders (``node_modules/``...) are not watched at
all.

When the kernel refuses a watch (``fs.inotify.max_user_watches`` reached) or a whole
inotify instance (``max_user_instances``), a change there would go unseen: the sync then
also makes a full pass every few seconds (even while other folders keep changing), and
says so in its log."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
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

# Each folder is opened through safefs (no link on the way) and watched through its
# descriptor's /proc path: a path from the root could meet a folder the guest just swapped
# for a link. The descriptor's magic link is followed, so no IN_DONT_FOLLOW.
MASK = (
    flags.CREATE
    | flags.DELETE
    | flags.MODIFY
    | flags.CLOSE_WRITE
    | flags.MOVED_FROM
    | flags.MOVED_TO
    | flags.ATTRIB
    | flags.ONLYDIR
)
GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # nothing to watch (or a link: not watched)


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
        try:
            self.rewatch()
        except BaseException:
            self.inotify.close()
            raise

    @property
    def fd(self) -> int:
        return int(self.inotify.fileno())

    def rewatch(self) -> None:
        """Watch every directory as the tree is now (after the kernel's queue overflowed)."""
        self.dirs.clear()
        self.incomplete = False
        self._watch("")
        self._watch_below("")

    def _watch_below(self, start: str, seen: set[str] | None = None) -> None:
        """Watch every directory below ``start``; each path found goes into ``seen``."""
        try:
            for rel, st in self.tree.walk(start, prune=self.prune):
                if seen is not None:
                    seen.add(rel)
                if stat.S_ISDIR(st.st_mode) and not (self.prune and self.prune(rel)):
                    self._watch(rel)
        except OSError as exc:  # a folder that cannot be read (mode 000): a full pass will
            self._unwatched(start, exc)

    def _watch(self, rel: str) -> None:
        try:
            if self.max_watches is not None and len(self.dirs) >= self.max_watches:
                raise OSError(errno.ENOSPC, "watch limit")
            fd = self.tree.open_dir(rel)
            try:
                wd = self.inotify.add_watch(f"/proc/self/fd/{fd}", MASK)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno not in GONE:
                self._unwatched(rel, exc)
            return
        self.dirs[wd] = rel

    def _unwatched(self, rel: str, exc: OSError) -> None:
        if self.incomplete:
            return
        self.incomplete = True
        fix = (
            "raise fs.inotify.max_user_watches (sysctl) to watch every folder"
            if exc.errno == errno.ENOSPC
            else exc.strerror or str(exc)
        )
        log.warning(
            "cannot watch %s/%s: changes there are found by a full pass every few seconds; %s",
            self.tree.root,
            rel,
            fix,
        )

    def _forget(self, rel: str) -> None:
        """A folder moved away: its watches (and those below it) no longer say where."""
        for wd, path in list(self.dirs.items()):
            if path == rel or path.startswith(rel + "/"):
                del self.dirs[wd]
                with contextlib.suppress(OSError):
                    self.inotify.rm_watch(wd)

    def read(self) -> set[str] | None:
        """Paths changed since the last read; None when only a full scan knows (the
        kernel's queue overflowed)."""
        out: set[str] = set()
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
                if event.mask & flags.MOVED_FROM:
                    self._forget(rel)
                if event.mask & (flags.CREATE | flags.MOVED_TO) and not (
                    self.prune and self.prune(rel)
                ):
                    # What was made in it before its watch existed is seen now.
                    self._watch(rel)
                    self._watch_below(rel, out)
        return out

    def close(self) -> None:
        self.inotify.close()


def _forward(watcher: TreeWatcher, changed: asyncio.Queue[set[str] | None]) -> None:
    try:
        found = watcher.read()
    except OSError as exc:  # never lose a batch: a full pass finds what it held
        log.warning("reading %s's changes failed (%s); rescanning", watcher.tree.root, exc)
        found = None
    changed.put_nowait(found)


async def run(
    engine: SyncEngine,
    stop: asyncio.Event,
    ready: asyncio.Event | None,
    max_watches: int | None = None,
) -> None:
    """Sync until ``stop`` is set: both sides' watchers first (neither follows a link:
    TreeWatcher), then a full pass, which finds what changed before they watched, then
    batches of changes; and while a folder is unwatched, a full pass every few seconds."""
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
                watcher = await _open_watcher(side.tree, prune, max_watches)
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
        passes = _FullPasses(engine)
        await passes.run()
        if ready is not None:
            ready.set()
        while not stop.is_set():
            if (polling or any(w.incomplete for w in watchers)) and passes.due():
                await passes.run()  # unwatched folders: even while others keep changing
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
            if paths is None:
                await passes.run()
                continue
            if not paths:
                continue
            try:
                report = await asyncio.to_thread(engine.sync, paths)
            except OSError as exc:  # a path vanished mid-batch: a full pass settles it
                log.warning("sync batch failed (%s); rescanning", exc)
                await passes.run()
                continue
            if report.applied:
                engine.emit("synced", count=report.applied)
    finally:
        for watcher in watchers:
            loop.remove_reader(watcher.fd)
            watcher.close()
        stop.set()


async def _open_watcher(
    tree: SafeTree, prune: Callable[[str], bool], max_watches: int | None
) -> TreeWatcher:
    """A TreeWatcher set up in a thread (a large tree takes a while); cancelled meanwhile,
    the thread still finishes, and its watcher is closed then rather than leaked."""
    setup = asyncio.ensure_future(asyncio.to_thread(TreeWatcher, tree, prune, max_watches))
    try:
        return await asyncio.shield(setup)
    except asyncio.CancelledError:
        setup.add_done_callback(_close_unused)
        raise


def _close_unused(setup: asyncio.Future[TreeWatcher]) -> None:
    if not setup.cancelled() and setup.exception() is None:
        setup.result().close()


class _FullPasses:
    """Full passes, and when the next is due for folders no watcher sees: every
    POLL_SECONDS, or ten times as long as the last took (never the sync's whole work)."""

    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine
        self.last = self.took = 0.0

    def due(self) -> bool:
        return time.monotonic() - self.last >= max(POLL_SECONDS, 10 * self.took)

    async def run(self) -> None:
        started = time.monotonic()
        report = await asyncio.to_thread(self.engine.sync)
        self.last = time.monotonic()
        self.took = self.last - started
        if report.applied:
            self.engine.emit("synced", count=report.applied)
