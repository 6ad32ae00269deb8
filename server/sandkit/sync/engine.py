"""The sync engine: an initial sync, then watchfiles on both trees, each batch planned
(three-way, against the journal) and applied in one journal transaction.

Nothing on the host is lost: a host file that sync overwrites or deletes is copied or moved
to the sandbox's trash first (`sandkit undo`), and a burst of deletions coming from the
sandbox is held until a person approves it (`sandkit sync approve|reject`)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchfiles import awatch

from sandkit.sync.ignore import Ignore
from sandkit.sync.journal import Journal
from sandkit.sync.plan import Action, Entry, Kind, Op, conflict_name, plan
from sandkit.sync.tree import Side

log = logging.getLogger(__name__)

DELETE_LIMIT = 50  # files deleted from the sandbox in one batch before we hold them
DELETE_FRACTION = 0.3  # … or this share of the workspace (with at least 10 files)
CHUNK = 500  # actions per journal transaction
PARALLEL_FROM = 64  # new files in one batch from which copies run in threads
COPY_THREADS = 4
# Deletions coming from the sandbox reach the host only after this long without further
# deletions, so that a burst (rm -rf) is seen whole and held before its first file is gone.
DELETE_GRACE = 1.0
BURST_WINDOW = 30.0  # seconds over which deletions from the sandbox count as one burst


@dataclass
class Report:
    applied: int = 0
    conflicts: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


Listener = Callable[[str, dict[str, Any]], None]


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


class SyncEngine:
    def __init__(
        self,
        host: Path,
        share: Path,
        state: Path,
        *,
        share_owner: tuple[int, int] | None = None,
        host_owner: tuple[int, int] | None = None,
        delete_limit: int = DELETE_LIMIT,
        delete_fraction: float = DELETE_FRACTION,
        grace: float = DELETE_GRACE,
    ) -> None:
        self.journal = Journal(state / "sync.db")
        self.ignore = Ignore.for_workspace(host)
        self.host = Side("host", host, self.journal, self.ignore, host_owner)
        self.share = Side("share", share, self.journal, self.ignore, share_owner)
        self.trash_root = state / "trash"
        self.delete_limit, self.delete_fraction = delete_limit, delete_fraction
        self.pending: set[str] = set()  # host paths whose deletion waits for a person
        self.deferred: dict[str, float] = {}  # deletions from the sandbox, waiting out the grace
        self.last_deletion = 0.0
        # Sandbox deletions applied lately: (when, path, where it went, files), so a burst
        # that arrives slowly is still seen as one, and undone.
        self.recent: collections.deque[tuple[float, str, Path, int]] = collections.deque()
        self.grace = grace
        self.conflicts: list[str] = []
        self.status = "syncing"
        self._reported = ""  # the last status told to listeners
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()

    def emit(self, event: str, **data: Any) -> None:
        for listener in self.listeners:
            listener(event, data)

    # -- one pass ---------------------------------------------------------------------------
    def sync(self, paths: Iterable[str] | None = None) -> Report:
        """Bring both trees together (all of them, or ``paths`` and what is below)."""
        with self._lock:
            self.status = "syncing"
            wanted = None if paths is None else sorted(set(paths))
            base = self.journal.base(wanted)
            with self.journal.batch():  # one commit for the digest cache, not one per file
                share = self.share.scan(wanted)
                # A host file the share and the base have never seen is simply copied (and
                # hashed while copying): no need to read it twice.
                host = self.host.scan(wanted, lambda rel: rel in share or rel in base)
            report = Report()
            actions = plan(host, share, base)
            # Committed in chunks, so a crash during a big first sync keeps what was done.
            for start in range(0, max(len(actions), 1), CHUNK):
                with self.journal.batch():
                    self._apply(actions[start : start + CHUNK], report)
            self._status()
        self._tell()
        return report

    def _apply(self, actions: list[Action], report: Report) -> None:
        stamp = _stamp()
        now = time.monotonic()
        actions = self._copy_many(actions, report)
        for action in actions:
            if action.op is Op.DELETE_HOST:
                if action.path in self.pending:
                    report.held.append(action.path)
                else:
                    self.deferred.setdefault(action.path, now)
                    self.last_deletion = now
                continue
            self._one(action, action.path, action.entry, stamp, report)
            report.applied += 1
        self._release(report, stamp)

    def _copy_many(self, actions: list[Action], report: Report) -> list[Action]:
        """Copy many new files into the share at once (a first sync): file creation is
        slow on most disks, and threads overlap it. Returns the actions left to do."""
        bulk = [
            a
            for a in actions
            if a.op is Op.TO_SHARE and a.entry is not None and a.entry.kind is Kind.FILE
        ]
        if len(bulk) < PARALLEL_FROM:
            return actions
        for action in bulk:  # parents first, in order, before the threads start
            self.share.path(action.path).parent.mkdir(parents=True, exist_ok=True)
        chosen = set(bulk)
        rest = [a for a in actions if a not in chosen]
        done = set()

        def copy(action: Action) -> tuple[Action, str, os.stat_result] | None:
            assert action.entry is not None
            try:
                digest, st = self.share.copy_in(
                    action.path, self.host.path(action.path), action.entry.mode
                )
            except FileNotFoundError:
                return None  # gone since the scan: the next batch sees it
            return action, digest, st

        dirs = [a for a in rest if a.op is Op.TO_SHARE and a.entry and a.entry.kind is Kind.DIR]
        for action in dirs:  # directories first: their modes, their owner
            self._one(action, action.path, action.entry, "", report)
            report.applied += 1
            done.add(action)
        with ThreadPoolExecutor(COPY_THREADS) as pool:
            for result in pool.map(copy, bulk):
                if result is None:
                    continue
                action, digest, st = result
                assert action.entry is not None
                self.journal.cache_digest(
                    "share", action.path, st.st_ino, st.st_size, st.st_mtime_ns, digest
                )
                self.journal.record(
                    action.path, Entry(Kind.FILE, action.entry.mode, action.entry.size, digest)
                )
                report.applied += 1
        return [a for a in rest if a not in done]

    def _release(self, report: Report, stamp: str) -> None:
        """Deferred deletions: drop those undone in the sandbox, hold them all if they are a
        burst, else apply the ones whose grace period is over."""
        for rel in [r for r in self.deferred if self.share.entry(r) is not None]:
            del self.deferred[rel]
        if not self.deferred:
            return
        now = time.monotonic()
        while self.recent and now - self.recent[0][0] > BURST_WINDOW:
            self.recent.popleft()
        files = sum(self.journal.files_under(rel) for rel in self.deferred)
        files += sum(count for _, _, _, count in self.recent)
        tracked = max(self.journal.count_files() + sum(c for *_, c in self.recent), 1)
        burst = files > self.delete_limit or (
            files >= 10 and files > self.delete_fraction * tracked
        )
        if burst or self.pending:  # while a burst is held, later deletions join it
            # A burst: hold it, and bring back what it already took (a slow rm -rf).
            restored = [self._untrash(rel, stored) for _, rel, stored, _ in self.recent]
            held = sorted({*self.deferred, *(r for r in restored if r)})
            self.recent.clear()
            self.pending.update(held)
            self.deferred.clear()
            report.held.extend(held)
            self.emit("deletions-held", count=files, paths=held[:20])
            return
        if now - self.last_deletion < self.grace:
            return  # deletions are still coming: wait until the burst is over and whole
        for rel in list(self.deferred):
            del self.deferred[rel]
            count = self.journal.files_under(rel)
            stored = self._to_trash(rel, stamp, "deleted in the sandbox", keep=False)
            self._forget(rel)
            if stored is not None:
                self.recent.append((now, rel, stored, max(count, 1)))
            report.applied += 1

    def _untrash(self, rel: str, stored: Path) -> str | None:
        """Put a just-deleted host path back from the trash, as synced state again."""
        target = self.host.path(rel)
        if os.path.lexists(target) or not os.path.lexists(stored):
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stored), str(target))
        for path, entry in self.host.scan([rel]).items():
            self.journal.record(path, entry)
        return rel

    def tick(self) -> Report:
        """Apply deferred deletions whose time has come (the watcher calls this when idle)."""
        report = Report()
        with self._lock:
            if self.deferred:
                with self.journal.batch():
                    self._release(report, _stamp())
            self._status()
        self._tell()
        return report

    def _status(self) -> None:
        self.status = (
            "paused"
            if self.pending
            else "syncing"
            if self.deferred
            else "conflicts"
            if self.conflicts
            else "in sync"
        )

    def _tell(self) -> None:
        if self.status != self._reported:
            self._reported = self.status
            self.emit("status", status=self.status)

    def _one(
        self, action: Action, rel: str, entry: Entry | None, stamp: str, report: Report
    ) -> None:
        op = action.op
        if op is Op.TO_SHARE and entry is not None:
            self._copy(self.host, self.share, rel, entry)
        elif op is Op.TO_HOST and entry is not None:
            self._to_trash(rel, stamp, "overwritten by the sandbox", keep=True)
            self._copy(self.share, self.host, rel, entry)
        elif op is Op.DELETE_SHARE:
            self.share.remove(rel)
            self._forget(rel)
        elif op is Op.DELETE_HOST:
            self._to_trash(rel, stamp, "deleted in the sandbox", keep=False)
            self._forget(rel)
        elif op is Op.CONFLICT and entry is not None:
            aside = conflict_name(rel, stamp)
            self.share.path(rel).replace(self.share.path(aside))
            kept = self.share.entry(aside)
            if kept is not None:
                self._copy(self.share, self.host, aside, kept)
            self._copy(self.host, self.share, rel, entry)
            self.conflicts.append(rel)
            report.conflicts.append(rel)
            self.emit("conflict", path=rel, sandbox_copy=aside)
        elif op is Op.RECORD:
            self.journal.record(rel, entry)
        elif op is Op.FORGET:
            self._forget(rel)
        elif op is Op.REFUSE_LINK and entry is not None:
            report.refused.append(rel)
            self.emit("link-refused", path=rel, target=entry.target)

    def _copy(self, src: Side, dst: Side, rel: str, entry: Entry) -> None:
        dst.path(rel).parent.mkdir(parents=True, exist_ok=True)
        if entry.kind is Kind.DIR:
            dst.make_dir(rel, entry.mode)
        elif entry.kind is Kind.LINK and entry.target is not None:
            dst.make_link(rel, entry.target)
        else:
            try:
                digest = dst.write_from(rel, src.path(rel), entry.mode)
            except FileNotFoundError:
                return  # gone since the scan: the next batch sees it
            entry = Entry(Kind.FILE, entry.mode, entry.size, digest)
        self.journal.record(rel, entry)

    def _forget(self, rel: str) -> None:
        for path in self.journal.base([rel]):
            self.journal.record(path, None)

    def _to_trash(self, rel: str, stamp: str, reason: str, keep: bool) -> Path | None:
        """Keep the host's version of ``rel`` in the trash: a copy (it is about to be
        overwritten) or the thing itself (it is being deleted)."""
        source = self.host.path(rel)
        if not os.path.lexists(source):
            return None
        stored = self.trash_root / stamp / rel
        stored.parent.mkdir(parents=True, exist_ok=True)
        if keep:
            if source.is_dir() and not source.is_symlink():
                return None  # a directory being replaced keeps its files: trashed one by one
            shutil.copy2(source, stored, follow_symlinks=False)
        else:
            shutil.move(str(source), str(stored))
        self.journal.trashed(stamp, rel, str(stored), reason)
        return stored

    # -- a person's answer to held deletions ----------------------------------------------
    def approve(self) -> int:
        with self._lock:
            paths, self.pending = sorted(self.pending), set()
        stamp = _stamp()
        with self._lock, self.journal.batch():
            for rel in paths:
                if self.share.entry(rel) is None:
                    self._to_trash(rel, stamp, "deleted in the sandbox (approved)", keep=False)
                    self._forget(rel)
        self.sync(paths)
        return len(paths)

    def reject(self) -> int:
        """Put the held files back into the sandbox."""
        with self._lock:
            paths, self.pending = sorted(self.pending), set()
            with self.journal.batch():
                for rel in paths:
                    for path, entry in sorted(self.host.scan([rel]).items()):
                        self._copy(self.host, self.share, path, entry)
        self.sync(paths)
        return len(paths)

    # -- watching ----------------------------------------------------------------------------
    def _relative(self, changed: Iterable[str]) -> set[str]:
        out = set()
        for raw in changed:
            path = Path(raw)
            for side in (self.host, self.share):
                if path.is_relative_to(side.root) and path != side.root:
                    out.add(path.relative_to(side.root).as_posix())
        return out

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Sync until ``stop`` is set: a full pass first, then watcher batches."""
        self.host.clean_temporaries()
        self.share.clean_temporaries()
        await asyncio.to_thread(self.sync)
        if ready is not None:
            ready.set()
        async for changes in awatch(
            self.host.root,
            self.share.root,
            watch_filter=None,
            debounce=30,
            step=10,
            stop_event=stop,
            rust_timeout=250,
            yield_on_timeout=True,
        ):
            paths = self._relative(path for _, path in changes)
            if not paths:  # a quiet moment: deferred deletions may be due
                if self.deferred:
                    report = await asyncio.to_thread(self.tick)
                    if report.applied:
                        self.emit("synced", count=report.applied)
                continue
            if paths:
                try:
                    report = await asyncio.to_thread(self.sync, paths)
                except OSError as exc:  # a path vanished mid-batch: a full pass settles it
                    log.warning("sync batch failed (%s); rescanning", exc)
                    report = await asyncio.to_thread(self.sync)
                if report.applied:
                    self.emit("synced", count=report.applied)

    def close(self) -> None:
        self.journal.close()
