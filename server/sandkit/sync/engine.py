"""The sync engine: an initial sync, then batches of changes from both trees' watchers
(watch.py), each planned (three-way, against the journal) and applied (apply.py) in
journal transactions, through the guard below.

Nothing on the host is lost: a host file that sync overwrites or deletes is copied or moved
to the sandbox's trash first (`sandkit undo`). What would hurt the host is held until a
person answers (`sandkit sync pending|approve|reject`): a burst of deletions or destructive
overwrites coming from the sandbox, and any change to a path the host runs (git hooks,
editor tasks, shell rc files; see protect.py). Links the sandbox makes reach the host only
when they resolve inside the workspace, and every file operation goes through safefs."""

from __future__ import annotations

import asyncio
import collections
import difflib
import itertools
import os
import stat
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandkit.logs import logger
from sandkit.sync.apply import Applier, Listener, Phases, Report, new_stamp
from sandkit.sync.plan import Action, Entry, Kind, Op, conflict_name, parents, plan
from sandkit.sync.protect import Protected, git_config_change_is_safe, is_git_config
from sandkit.sync.safefs import UnsafePath
from sandkit.sync.tree import Side

__all__ = ["BURST_WINDOW", "HOLD_BURST", "HOLD_PROTECTED", "Listener", "Report", "SyncEngine"]

log = logger(__name__)

DELETE_LIMIT = 50  # files deleted from the sandbox in one batch before we hold them
DELETE_FRACTION = 0.3  # … or this share of the workspace (with at least 10 files)
# Actions per journal transaction: a crash keeps what earlier chunks did; one commit (an
# fsync) per few thousand files keeps a first sync near the speed of a copy.
CHUNK = 4096
# Deletions coming from the sandbox reach the host only after this long without further
# deletions, so that a burst (rm -rf) is seen whole and held before its first file is gone.
DELETE_GRACE = 1.0
# Seconds over which deletions and destructive overwrites from the sandbox count as one
# burst: minutes, so that pacing them (49 files every 31 s) does not escape the count.
BURST_WINDOW = 300.0
SHRINK = 4  # an overwrite that leaves less than 1/SHRINK of a file's bytes is destructive

HOLD_BURST = "deleted or emptied in a burst"
HOLD_PROTECTED = "runs on the host (protected path)"


class SyncEngine(Applier):
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
        super().__init__(host, share, state, share_owner, host_owner)
        self.delete_limit, self.delete_fraction = delete_limit, delete_fraction
        self.protected = protected or Protected([])
        self.pending: dict[str, str] = {}  # held path -> why; the host keeps its version
        self._approved: set[str] = set()  # held paths a person let through, during approve()
        self.deferred: dict[str, float] = {}  # deletions from the sandbox, waiting out the grace
        self.deferred_writes: dict[str, float] = {}  # destructive overwrites, likewise
        self.last_deletion = 0.0
        # Sandbox deletions and overwrites applied lately: (when, path, where the host's
        # version went, files, bytes), so that a burst arriving slowly is seen whole, and undone.
        self.recent: collections.deque[tuple[float, str, Path, int, int]] = collections.deque()
        self.grace = grace
        self.status = "syncing"
        self._reported = ""  # the last status told to listeners
        self._lock = threading.Lock()

    # -- one pass ---------------------------------------------------------------------------
    def sync(self, paths: Iterable[str] | None = None) -> Report:
        """Bring both trees together (all of them, or ``paths`` and what is below)."""
        with self._lock:
            self.status = "syncing"
            report = Report()
            phases = Phases(report, self.journal)
            wanted = None if paths is None else sorted(set(paths))
            base = self.journal.base(wanted)
            with self.journal.batch():  # one commit for the digest cache, not one per file
                share = self.share.scan(wanted)
                # A host file the share and the base have never seen is simply copied (and
                # hashed while copying): no need to read it twice.
                host = self.host.scan(wanted, lambda rel: rel in share or rel in base)
            for rel in list(self.refused):  # a refused link the sandbox took back: forgotten
                st = self.share.tree.lstat(rel)
                if st is None or not stat.S_ISLNK(st.st_mode):
                    del self.refused[rel]
            phases.done("scan")
            actions = plan(host, share, base)
            phases.done("plan")
            # Committed in chunks, so a crash during a big first sync keeps what was done.
            for start in range(0, max(len(actions), 1), CHUNK):
                with self.journal.batch():
                    self._apply(actions[start : start + CHUNK], report, host)
            if self._links_made:
                with self.journal.batch():
                    self._recheck_links(report)
            phases.done("copy")
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
        stamp = new_stamp()
        now = time.monotonic()
        new_files = []  # copied together at the end, a folder at a time
        for action in actions:
            rel, op = action.path, action.op
            if op is Op.TO_SHARE and action.entry is not None and action.entry.kind is Kind.FILE:
                new_files.append(action)
                continue
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
                self._unsafe(rel, exc, report)
                continue
            report.applied += 1
        self._copy_new(new_files, report)
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
            self._hold_burst(files, report)
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
                self._unsafe(rel, exc, report)
                continue
            if stored is not None:
                self.recent.append((now, rel, stored, 1, size))
            report.applied += 1

    def _hold_burst(self, files: int, report: Report) -> None:
        """A burst: hold it, and bring back what it already took (a slow rm -rf), the
        latest first, so that a path changed twice ends as the host had it before both."""
        stamp = new_stamp()
        restored = [
            self._untrash(rel, stored, f"{stamp}-{i}")
            for i, (_, rel, stored, *_) in enumerate(reversed(self.recent))
        ]
        held = {*self.deferred, *self.deferred_writes, *(r for r in restored if r)}
        self.recent.clear()
        self.deferred.clear()
        self.deferred_writes.clear()
        self._hold(dict.fromkeys(held, HOLD_BURST), report)
        self.emit("deletions-held", count=files, paths=sorted(held)[:20])

    def _untrash(self, rel: str, stored: Path, stamp: str) -> str | None:
        """Put the host's version of a path just deleted or overwritten back from the
        trash, as the synced state again. What the host has there now (what the sandbox
        made since, e.g. files in a folder that replaced this file) goes to the trash
        first, and the journal forgets what was below ``rel``: else the next pass would
        read those files' absence on the host as deletions, and delete them in the
        sandbox too."""
        if not os.path.lexists(stored):
            return None
        self._to_trash(rel, stamp, "set aside to bring back what a held burst took", keep=False)
        try:
            self.host.tree.import_(rel, stored, move=True, replace=True)
        except OSError as exc:
            log.warning("could not put %s back from the trash: %s", rel, exc)
            return None
        self._forget(rel)
        for path, entry in self.host.scan([rel]).items():
            self.journal.record(path, entry)
        return rel

    def tick(self) -> Report:
        """Apply deferred deletions whose time has come (the watcher calls this when idle)."""
        report = Report()
        with self._lock:
            if self.deferred or self.deferred_writes:
                with self.journal.batch():
                    self._release(report, new_stamp())
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

    async def run(
        self,
        stop: asyncio.Event,
        ready: asyncio.Event | None = None,
        max_watches: int | None = None,
    ) -> None:
        """Sync until ``stop`` is set: both sides watched, a full pass, then batches of
        changes (sync/watch.py; ``max_watches`` per side: None, as many as the kernel
        gives)."""
        from sandkit.sync.watch import run

        await run(self, stop, ready, max_watches)

    def close(self) -> None:
        self.journal.close()
        self.host.tree.close()
        self.share.tree.close()
