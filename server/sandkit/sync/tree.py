"""Reading and writing one side of the sync (a directory tree): entries with digests
from the journal's stat cache, atomic writes, all through the checked layer (safefs)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from sandkit.sync.ignore import Ignore
from sandkit.sync.journal import Journal
from sandkit.sync.plan import Entry, Kind, parents
from sandkit.sync.safefs import TMP_PREFIX, SafeTree, UnsafePath

__all__ = ["TMP_PREFIX", "Side", "UnsafePath"]


class Side:
    """One side of the sync. Everything goes through ``tree`` (a SafeTree): no path under
    ``root`` is ever opened by name from the root, so no link inside it is followed."""

    def __init__(
        self,
        name: str,
        root: Path,
        journal: Journal,
        ignore: Ignore,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self.name, self.root, self.journal, self.ignore = name, root, journal, ignore
        self.tree = SafeTree(root, owner)

    def path(self, rel: str) -> Path:
        """For messages and events only: never open what this names."""
        return self.root / rel

    def entry(self, rel: str, digest_needed: bool = True) -> Entry | None:
        st = self.tree.lstat(rel)
        return None if st is None else self._entry(rel, st, digest_needed)

    def _entry(self, rel: str, st: os.stat_result, digest_needed: bool) -> Entry | None:
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            return Entry(Kind.DIR, mode)
        if stat.S_ISLNK(st.st_mode):
            try:
                return Entry(Kind.LINK, 0o777, target=self.tree.readlink(rel))
            except OSError:
                return None
        if not stat.S_ISREG(st.st_mode):
            return None  # sockets, fifos, devices: not synced
        digest = self.journal.cached_digest(self.name, rel, st.st_ino, st.st_size, st.st_mtime_ns)
        if digest is None and digest_needed:
            try:
                digest = self.tree.digest(rel)
            except OSError:
                return None  # gone, or swapped for a link since it was listed
            self.journal.cache_digest(self.name, rel, st.st_ino, st.st_size, st.st_mtime_ns, digest)
        return Entry(Kind.FILE, mode, st.st_size, digest)

    def scan(
        self, under: Iterable[str] | None = None, needs_digest: Callable[[str], bool] | None = None
    ) -> dict[str, Entry]:
        """Entries of the whole tree, or of some paths and everything below them. Files for
        which ``needs_digest`` says no are not read (their content is copied, hashed then)."""

        def need(rel: str) -> bool:
            return needs_digest is None or needs_digest(rel)

        out: dict[str, Entry] = {}
        starts = list(under) if under is not None else [""]
        for start in starts:
            if start:
                if self.ignore(start) or any(self.ignore(p, True) for p in parents(start)):
                    continue
                entry = self.entry(start, need(start))
                if entry is None:
                    continue
                out[start] = entry
                if entry.kind is not Kind.DIR:
                    continue
            for rel, st in self.tree.walk(start, prune=lambda r: self.ignore(r, True)):
                is_dir = stat.S_ISDIR(st.st_mode)
                if self.ignore(rel, is_dir):
                    continue
                if not is_dir and rel.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                    continue
                entry = self._entry(rel, st, is_dir or need(rel))
                if entry is not None:
                    out[rel] = entry
        return out

    # -- writing ----------------------------------------------------------------------------
    def make_dir(self, rel: str, mode: int) -> None:
        self.tree.make_dir(rel, mode)

    def write_from(self, rel: str, source: Side, mode: int) -> str:
        """Copy ``rel`` from the other side here atomically, returning its digest."""
        hexdigest, st = self.copy_in(rel, source, mode)
        self.journal.cache_digest(self.name, rel, st.st_ino, st.st_size, st.st_mtime_ns, hexdigest)
        return hexdigest

    def copy_in(self, rel: str, source: Side, mode: int) -> tuple[str, os.stat_result]:
        """The copy alone, safe to run in a worker thread (no journal)."""
        return self.tree.copy_from(source.tree, rel, mode)

    def make_link(self, rel: str, target: str) -> None:
        self.tree.make_link(rel, target)

    def remove(self, rel: str) -> None:
        self.tree.remove(rel)

    def clean_temporaries(self) -> None:
        self.tree.clean_temporaries()
