"""The sync engine: an initial sync, then watchfiles on both trees, each batch planned
(three-way, against the journal) and applied in one journal transaction.

Nothing on the host is lost: a host file that sync overwrites or deletes is copied or moved
to the sandbox's trash first (`sandkit undo`). What would hurt the host is held until a
person answers (`sandkit sync pending|approve|reject`): a burst of deletions or destructive
overwrites coming from the sandbox, and any change to a path the host runs (git hooks,
editor tasks, shell rc files; see protect.py). Links the sandbox makes reach the host only
when they resolve inside the workspace, and every file operation goes through safefs."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import difflib
import itertools
import logging
import os
import stat
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
from sandkit.sync.plan import Action, Entry, Kind, Op, conflict_name, parents, plan
from sandkit.sync.protect import Protected, git_config_change_is_safe, is_git_config
from sandkit.sync.safefs import UnsafePath, clean_mode, current_umask
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
# Seconds over which deletions and destructive overwrites from the sandbox count as one
# burst: minutes, so that pacing them (49 files every 31 s) does not escape the count.
BURST_WINDOW = 300.0
DEBOUNCE_MS = 30  # changes closer than this are one batch
IDLE_TICK = 0.25  # seconds without changes after which deferred deletions are looked at
SHRINK = 4  # an overwrite that leaves less than 1/SHRINK of a file's bytes is destructive

HOLD_BURST = "deleted or emptied in a burst"
HOLD_PROTECTED = "runs on the host (protected path)"


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
        protected: Protected | None = None,
    ) -> None:
        self.journal = Journal(state / "sync.db")
        self.ignore = Ignore.for_workspace(host)
        self.host = Side("host", host, self.journal, self.ignore, host_owner)
        self.share = Side("share", share, self.journal, self.ignore, share_owner)
        self.trash_root = state / "trash"
        self.delete_limit, self.delete_fraction = delete_limit, delete_fraction
        self.protected = protected or Protected([])
        self.umask = current_umask()
        self.pending: dict[str, str] = {}  # held path -> why; the host keeps its version
        self._approved: set[str] = set()  # held paths a person let through, during approve()
        self.deferred: dict[str, float] = {}  # deletions from the sandbox, waiting out the grace
        self.deferred_writes: dict[str, float] = {}  # destructive overwrites, likewise
        self.last_deletion = 0.0
        # Sandbox deletions and overwrites applied lately: (when, path, where the host's
        # version went, files, bytes), so that a burst arriving slowly is seen whole, and undone.
        self.recent: collections.deque[tuple[float, str, Path, int, int]] = collections.deque()
        self._links_made = False
        self.refused: dict[str, str] = {}  # links from the sandbox not made here -> target
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
            for rel in list(self.refused):  # a refused link the sandbox took back: forgotten
                st = self.share.tree.lstat(rel)
                if st is None or not stat.S_ISLNK(st.st_mode):
                    del self.refused[rel]
            actions = plan(host, share, base)
            # Committed in chunks, so a crash during a big first sync keeps what was done.
            for start in range(0, max(len(actions), 1), CHUNK):
                with self.journal.batch():
                    self._apply(actions[start : start + CHUNK], report, host)
            if self._links_made:
                with self.journal.batch():
                    self._recheck_links(report)
            self._status()
        self._tell()
        return report

    def _approved_path(self, rel: str) -> bool:
        return bool(self._approved) and (
            rel in self._approved or any(p in self._approved for p in parents(rel))
        )

    def _held_path(self, rel: str) -> bool:
        return rel in self.pending or any(p in self.pending for p in parents(rel))

    def _apply(self, actions: list[Action], report: Report, host: dict[str, Entry]) -> None:
        stamp = _stamp()
        now = time.monotonic()
        actions = self._copy_many(actions, report)
        for action in actions:
            rel, op = action.path, action.op
            if op in (Op.TO_HOST, Op.DELETE_HOST, Op.CONFLICT):
                approved = self._approved_path(rel)  # rel, or a folder above it
                if not approved and self._held_path(rel):
                    report.held.append(rel)
                    continue
                # A path the host runs waits for its own answer, even under an approved
                # folder (the person was never shown it on its own).
                if (
                    rel not in self._approved
                    and op is not Op.DELETE_HOST
                    and self._runs_on_host(action)
                ):
                    self._hold({rel: HOLD_PROTECTED}, report)
                    self.emit("protected-held", paths=[rel])
                    continue
                if not approved and op is Op.DELETE_HOST:
                    self.deferred.setdefault(rel, now)
                    self.last_deletion = now
                    continue
                if (
                    not approved
                    and op is Op.TO_HOST
                    and self._destructive(action.entry, host.get(rel))
                ):
                    self.deferred_writes.setdefault(rel, now)
                    self.last_deletion = now
                    continue
            try:
                self._one(action, rel, action.entry, stamp, report)
            except UnsafePath as exc:  # a component became a link since the scan
                report.refused.append(rel)
                self.emit("unsafe-path", path=rel, reason=str(exc))
                continue
            report.applied += 1
        self._release(report, stamp)

    def _runs_on_host(self, action: Action) -> bool:
        """Is this change from the sandbox to a path whose content the host runs?"""
        entry = action.entry
        if entry is not None and entry.kind is Kind.DIR:
            return False  # a directory runs nothing; what arrives in it is judged itself
        rel = action.path
        if action.op is Op.CONFLICT:
            return self.protected(rel) or self.protected(conflict_name(rel, "x"))
        if not self.protected(rel):
            return False
        if is_git_config(rel) and entry is not None and entry.kind is Kind.FILE:
            try:
                new = self.share.tree.read_bytes(rel).decode()
                old_entry = self.host.tree.lstat(rel)
                old = self.host.tree.read_bytes(rel).decode() if old_entry else None
            except (OSError, UnicodeDecodeError):
                return True
            return not git_config_change_is_safe(old, new)
        return True

    @staticmethod
    def _destructive(new: Entry | None, old: Entry | None) -> bool:
        """An overwrite that destroys more than it writes: a file emptied or cut to a
        small fraction of its size, or a folder replaced by a file or a link (everything in
        it goes)."""
        if new is not None and old is not None and old.kind is Kind.DIR:
            return new.kind is not Kind.DIR
        if new is None or old is None or old.kind is not Kind.FILE or old.size == 0:
            return False
        if new.kind is not Kind.FILE:
            return True  # a file replaced by a link or a directory
        return new.size * SHRINK < old.size

    def _hold(self, paths: dict[str, str], report: Report) -> None:
        self.pending.update(paths)
        report.held.extend(sorted(paths))

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
        chosen = set(bulk)
        rest = [a for a in actions if a not in chosen]
        done = set()
        dirs = [a for a in rest if a.op is Op.TO_SHARE and a.entry and a.entry.kind is Kind.DIR]
        for action in dirs:  # directories first: their modes, their owner
            try:
                self._one(action, action.path, action.entry, "", report)
            except UnsafePath as exc:
                report.refused.append(action.path)
                self.emit("unsafe-path", path=action.path, reason=str(exc))
            report.applied += 1
            done.add(action)
        for action in bulk:  # parents first, in order, before the threads start
            parent = action.path.rpartition("/")[0]
            with contextlib.suppress(UnsafePath):  # the copy below refuses it and says so
                self.share.tree.makedirs(parent)

        def copy(action: Action) -> tuple[Action, str, os.stat_result] | None:
            assert action.entry is not None
            try:
                digest, st = self.share.copy_in(action.path, self.host, action.entry.mode)
            except (FileNotFoundError, UnsafePath):
                return None  # gone or swapped since the scan: the next batch sees it
            return action, digest, st

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
        """Deferred deletions and overwrites: drop those undone in the sandbox, hold them
        all if they are a burst, else apply the ones whose grace period is over."""
        for rel in [r for r in self.deferred if self.share.entry(r, False) is not None]:
            del self.deferred[rel]
        if not self.deferred and not self.deferred_writes:
            return
        now = time.monotonic()
        while self.recent and now - self.recent[0][0] > BURST_WINDOW:
            self.recent.popleft()
        files = sum(self.journal.files_under(rel) for rel in self.deferred)
        files += len(self.deferred_writes)
        lost = sum(self.journal.bytes_under(rel) for rel in self.deferred)
        lost += sum(self.journal.bytes_under(rel) for rel in self.deferred_writes)
        files += sum(r[3] for r in self.recent)
        lost += sum(r[4] for r in self.recent)
        tracked = max(self.journal.count_files() + sum(r[3] for r in self.recent), 1)
        tracked_bytes = self.journal.total_bytes() + sum(r[4] for r in self.recent)
        burst = (
            files > self.delete_limit
            or (files >= 10 and files > self.delete_fraction * tracked)
            or files >= tracked  # the workspace would lose every file
            or (tracked_bytes > 0 and lost * 2 > tracked_bytes)  # or most of its bytes
        )
        if burst or self.pending:  # while a burst is held, later deletions join it
            # A burst: hold it, and bring back what it already took (a slow rm -rf).
            restored = [self._untrash(rel, stored) for _, rel, stored, *_ in self.recent]
            held = {*self.deferred, *self.deferred_writes, *(r for r in restored if r)}
            self.recent.clear()
            self.deferred.clear()
            self.deferred_writes.clear()
            self._hold(dict.fromkeys(held, HOLD_BURST), report)
            self.emit("deletions-held", count=files, paths=sorted(held)[:20])
            return
        if now - self.last_deletion < self.grace:
            return  # deletions are still coming: wait until the burst is over and whole
        for rel in list(self.deferred):
            del self.deferred[rel]
            count, size = self.journal.files_under(rel), self.journal.bytes_under(rel)
            stored = self._to_trash(rel, stamp, "deleted in the sandbox", keep=False)
            self._forget(rel)
            if stored is not None:
                self.recent.append((now, rel, stored, max(count, 1), size))
            report.applied += 1
        for rel in list(self.deferred_writes):
            del self.deferred_writes[rel]
            entry, size = self.share.entry(rel), self.journal.bytes_under(rel)
            if entry is None:
                continue  # deleted meanwhile: the next batch defers it as a deletion
            if not self._link_allowed(rel, entry, report):
                continue  # swapped for a link that leads out while it waited: not made
            stored = self._to_trash(
                rel, stamp, "overwritten by the sandbox", keep=self._keeps(rel, entry)
            )
            try:
                self._copy(self.share, self.host, rel, entry)
            except UnsafePath as exc:
                report.refused.append(rel)
                self.emit("unsafe-path", path=rel, reason=str(exc))
                continue
            if stored is not None:
                self.recent.append((now, rel, stored, 1, size))
            report.applied += 1

    def _untrash(self, rel: str, stored: Path) -> str | None:
        """Put the host's version of a path just deleted or overwritten back from the
        trash, as the synced state again."""
        if not os.path.lexists(stored):
            return None
        try:
            self.host.tree.import_(rel, stored, move=True, replace=True)
        except OSError as exc:
            log.warning("could not put %s back from the trash: %s", rel, exc)
            return None
        for path, entry in self.host.scan([rel]).items():
            self.journal.record(path, entry)
        return rel

    def tick(self) -> Report:
        """Apply deferred deletions whose time has come (the watcher calls this when idle)."""
        report = Report()
        with self._lock:
            if self.deferred or self.deferred_writes:
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
            if self.deferred or self.deferred_writes
            else "conflicts"
            if self.conflicts
            else f"in sync, {len(self.refused)} link(s) refused"
            if self.refused
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
            if not self._link_allowed(rel, entry, report):
                return
            self._to_trash(rel, stamp, "overwritten by the sandbox", keep=self._keeps(rel, entry))
            self._copy(self.share, self.host, rel, entry)
        elif op is Op.DELETE_SHARE:
            self.share.remove(rel)
            self._forget(rel)
        elif op is Op.DELETE_HOST:
            self._to_trash(rel, stamp, "deleted in the sandbox", keep=False)
            self._forget(rel)
        elif op is Op.CONFLICT and entry is not None:
            aside = conflict_name(rel, stamp)
            self.share.tree.rename(rel, aside)
            kept = self.share.entry(aside)
            if kept is not None and self._link_allowed(aside, kept, report):
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
            self._refuse_link(rel, entry, report)

    def _link_allowed(self, rel: str, entry: Entry, report: Report) -> bool:
        """A link from the sandbox is made on the host only if, resolved in the host's
        real tree (links on the way followed), it stays inside the workspace."""
        if entry.kind is not Kind.LINK:
            return True
        if entry.target is not None and self.host.tree.link_stays_inside(rel, entry.target):
            self._links_made = True
            return True
        self._refuse_link(rel, entry, report)
        return False

    def _refuse_link(self, rel: str, entry: Entry, report: Report) -> None:
        report.refused.append(rel)
        if self.refused.get(rel) != entry.target:
            self.emit("link-refused", path=rel, target=entry.target)
        self.refused[rel] = entry.target or ""

    def _recheck_links(self, report: Report) -> None:
        """Links made this pass may have changed where older ones lead (``a -> b/..``
        once b is itself a link): every host link is judged again, and any that now
        leaves the workspace is taken out of it (into the trash)."""
        self._links_made = False
        stamp = _stamp()
        for rel, target in sorted(self.journal.links().items()):
            st = self.host.tree.lstat(rel)
            if st is not None and not self.host.tree.link_stays_inside(rel, target):
                self._to_trash(rel, stamp, "a link that leads out of the workspace", keep=False)
                self._forget(rel)
                self._refuse_link(rel, Entry(Kind.LINK, 0o777, target=target), report)

    def _copy(self, src: Side, dst: Side, rel: str, entry: Entry) -> None:
        to_host = dst is self.host
        if entry.kind is Kind.DIR:
            mode = clean_mode(entry.mode, self.umask) | 0o700 if to_host else entry.mode
            dst.make_dir(rel, mode)
            entry = Entry(Kind.DIR, mode)
        elif entry.kind is Kind.LINK and entry.target is not None:
            dst.make_link(rel, entry.target)
        else:
            # Files from the sandbox get the user's umask and lose setuid/setgid/sticky;
            # the share's copy gets the same mode, so both sides agree.
            mode = clean_mode(entry.mode, self.umask) if to_host else entry.mode
            try:
                digest = dst.write_from(rel, src, mode)
            except FileNotFoundError:
                return  # gone since the scan: the next batch sees it
            if to_host and mode != entry.mode:
                with contextlib.suppress(OSError):  # changed again: the next batch sees it
                    src.tree.chmod(rel, mode)
            entry = Entry(Kind.FILE, mode, entry.size, digest)
        self.journal.record(rel, entry)

    def _forget(self, rel: str) -> None:
        for path in self.journal.base([rel]):
            self.journal.record(path, None)

    def _keeps(self, rel: str, entry: Entry) -> bool:
        """Whether the host's version of ``rel`` is copied to the trash (it is about to be
        overwritten in place) or moved there: a folder that a file or a link replaces goes
        whole, with whatever in it sync does not track."""
        st = self.host.tree.lstat(rel)
        return entry.kind is Kind.DIR or st is None or not stat.S_ISDIR(st.st_mode)

    def _to_trash(self, rel: str, stamp: str, reason: str, keep: bool) -> Path | None:
        """Keep the host's version of ``rel`` in the trash: a copy (it is about to be
        overwritten) or the thing itself (it is being deleted)."""
        st = self.host.tree.lstat(rel)
        if st is None:
            return None
        if keep and stat.S_ISDIR(st.st_mode):
            return None  # a directory being replaced keeps its files: trashed one by one
        stored = self.trash_root / stamp / rel
        stored.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.host.tree.export(rel, stored, move=not keep):
            return None
        self.journal.trashed(stamp, rel, str(stored), reason)
        return stored

    # -- a person's answer to held changes ------------------------------------------------
    def held(self) -> list[dict[str, Any]]:
        """What waits for a person: path, why, and for held edits a short diff."""
        out = []
        for rel, why in sorted(self.pending.items()):
            item: dict[str, Any] = {"path": rel, "why": why}
            if why == HOLD_PROTECTED:
                item["diff"] = self._diff(rel)
            out.append(item)
        return out

    def _diff(self, rel: str, limit: int = 64 << 10) -> str:
        def text(side: Side) -> list[str]:
            st = side.tree.lstat(rel)
            if st is None:
                return []
            if stat.S_ISLNK(st.st_mode):
                return [f"(a link to {side.tree.readlink(rel)})\n"]
            try:
                return side.tree.read_bytes(rel, limit).decode().splitlines(keepends=True)
            except (OSError, UnicodeDecodeError):
                return ["(binary or unreadable)\n"]

        try:
            lines = difflib.unified_diff(
                text(self.host), text(self.share), f"host/{rel}", f"sandbox/{rel}"
            )
            return "".join(itertools.islice(lines, 400))
        except OSError as exc:
            return f"(cannot compare: {exc})"

    def approve(self) -> int:
        """Let the held changes through: the sandbox's version reaches the host (the
        host's goes to the trash first)."""
        with self._lock:
            paths, self.pending = sorted(self.pending), {}
            self._approved = set(paths)
        try:
            self.sync(paths)
        finally:
            self._approved = set()
        return len(paths)

    def reject(self) -> int:
        """Put the host's version back into the sandbox (what the host does not have is
        taken out of the sandbox)."""
        with self._lock:
            paths, self.pending = sorted(self.pending), {}
            with self.journal.batch():
                for rel in paths:
                    try:
                        kept = sorted(self.host.scan([rel]).items())
                        if not kept:
                            self.share.remove(rel)
                        for path, entry in kept:
                            self._copy(self.host, self.share, path, entry)
                    except UnsafePath as exc:
                        log.warning("could not put %s back: %s", rel, exc)
        self.sync(paths)
        return len(paths)

    # -- watching ----------------------------------------------------------------------------
    def _relative(self, changed: Iterable[str]) -> set[str]:
        out = set()
        for raw in changed:
            path = Path(raw)
            if path.is_relative_to(self.host.root) and path != self.host.root:
                out.add(path.relative_to(self.host.root).as_posix())
        return out

    async def _watch_host(
        self, stop: asyncio.Event, changed: asyncio.Queue[set[str] | None]
    ) -> None:
        """The user's workspace, with watchfiles (its links are the user's own)."""
        async for changes in awatch(
            self.host.root,
            watch_filter=None,
            debounce=DEBOUNCE_MS,
            step=10,
            stop_event=stop,
            rust_timeout=250,
        ):
            if paths := self._relative(path for _, path in changes):
                changed.put_nowait(paths)

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Sync until ``stop`` is set: a full pass first, then batches of changes from
        both watchers (the share's never follows the guest's links: sync/watch.py)."""
        from sandkit.sync.watch import TreeWatcher
        from sandkit.tasks import spawn

        self.host.clean_temporaries()
        self.share.clean_temporaries()
        await asyncio.to_thread(self.sync)
        loop = asyncio.get_running_loop()
        changed: asyncio.Queue[set[str] | None] = asyncio.Queue()
        share_watch = await asyncio.to_thread(TreeWatcher, self.share.tree)
        loop.add_reader(share_watch.fd, lambda: changed.put_nowait(share_watch.read()))
        host_watch = spawn(self._watch_host(stop, changed), "sync-watch-host")
        if ready is not None:
            ready.set()
        try:
            while not stop.is_set():
                try:
                    first = await asyncio.wait_for(changed.get(), IDLE_TICK)
                except TimeoutError:  # a quiet moment: deferred deletions may be due
                    if self.deferred or self.deferred_writes:
                        report = await asyncio.to_thread(self.tick)
                        if report.applied:
                            self.emit("synced", count=report.applied)
                    continue
                await asyncio.sleep(DEBOUNCE_MS / 1000)  # let a burst of changes gather
                batch = [first]
                while not changed.empty():
                    batch.append(changed.get_nowait())
                paths = None if None in batch else {p for b in batch if b for p in b}
                if paths is not None and not paths:
                    continue
                try:
                    report = await asyncio.to_thread(self.sync, paths)
                except OSError as exc:  # a path vanished mid-batch: a full pass settles it
                    log.warning("sync batch failed (%s); rescanning", exc)
                    report = await asyncio.to_thread(self.sync)
                if report.applied:
                    self.emit("synced", count=report.applied)
        finally:
            loop.remove_reader(share_watch.fd)
            share_watch.close()
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await host_watch

    def close(self) -> None:
        self.journal.close()
        self.host.tree.close()
        self.share.tree.close()
