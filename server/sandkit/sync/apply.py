"""Applying a plan's actions to the two trees: copies (new files a folder at a time), links
judged in the host's real tree, deletions and overwrites of host files by way of the trash,
and the journal rows that say what both sides now hold. What is applied at all is the
guard's decision (engine.py); everything here goes through safefs."""

from __future__ import annotations

import contextlib
import datetime as dt
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandkit.sync import trashfs
from sandkit.sync.ignore import Ignore
from sandkit.sync.journal import Journal
from sandkit.sync.plan import Action, Entry, Kind, Op, conflict_name
from sandkit.sync.safefs import UnsafePath, clean_mode, current_umask
from sandkit.sync.tree import Side

Listener = Callable[[str, dict[str, Any]], None]


@dataclass
class Report:
    applied: int = 0
    conflicts: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    # Seconds per phase of the pass: scan, plan, copy, journal (rows and commits).
    phases: dict[str, float] = field(default_factory=dict)


class Phases:
    """Times the phases of one pass into a report; what the journal spent writing is
    taken out of the phase it happened in and counted as "journal"."""

    def __init__(self, report: Report, journal: Journal) -> None:
        self.report, self.journal = report, journal
        self._mark()

    def _mark(self) -> None:
        self._at, self._journal = time.perf_counter(), self.journal.seconds

    def done(self, phase: str) -> None:
        wrote = self.journal.seconds - self._journal
        times = self.report.phases
        times[phase] = times.get(phase, 0.0) + time.perf_counter() - self._at - wrote
        times["journal"] = times.get("journal", 0.0) + wrote
        self._mark()


def new_stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


class Applier:
    """The two sides, the journal and the trash, and the file operations of a pass."""

    def __init__(
        self,
        host: Path,
        share: Path,
        state: Path,
        share_owner: tuple[int, int] | None,
        host_owner: tuple[int, int] | None,
    ) -> None:
        self.journal = Journal(state / "sync.db")
        self.ignore = Ignore.for_workspace(host)
        self.host = Side("host", host, self.journal, self.ignore, host_owner)
        self.share = Side("share", share, self.journal, self.ignore, share_owner)
        self.trash_root = state / "trash"
        self.umask = current_umask()
        self._links_made = False
        self.refused: dict[str, str] = {}  # links from the sandbox not made here -> target
        self.conflicts: list[str] = []
        self.listeners: list[Listener] = []

    def emit(self, event: str, **data: Any) -> None:
        for listener in self.listeners:
            listener(event, data)

    def _unsafe(self, rel: str, exc: UnsafePath, report: Report) -> None:
        """A component became a link since the scan: not done, and said so."""
        report.refused.append(rel)
        self.emit("unsafe-path", path=rel, reason=str(exc))

    def _copy_new(self, actions: list[Action], report: Report) -> None:
        """New files for the share, copied together (a first sync is mostly these)."""
        files = [(a.path, a.entry.mode) for a in actions if a.entry is not None]
        if not files:
            return
        copied, failed = self.share.copy_new(self.host, files)
        self.journal.record_files(copied)
        report.applied += len(copied)
        for rel, exc in failed:  # else gone since the scan: the next batch sees it
            if isinstance(exc, UnsafePath):
                self._unsafe(rel, exc, report)

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
        when = new_stamp()
        for rel, target in sorted(self.journal.links().items()):
            st = self.host.tree.lstat(rel)
            if st is not None and not self.host.tree.link_stays_inside(rel, target):
                self._to_trash(rel, when, "a link that leads out of the workspace", keep=False)
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
        if not trashfs.export(self.host.tree, rel, stored, move=not keep):
            return None
        self.journal.trashed(stamp, rel, str(stored), reason)
        return stored
