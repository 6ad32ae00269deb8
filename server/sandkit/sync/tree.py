"""Reading and writing one side of the sync (a directory tree): entries with digests
from the journal's stat cache, atomic writes, all through the checked layer (safefs)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from sandkit.sync.fdcopy import NotAFile, copy_at
from sandkit.sync.ignore import Ignore
from sandkit.sync.journal import Journal
from sandkit.sync.plan import Entry, Kind, parents
from sandkit.sync.safefs import TMP_PREFIX, SafeTree, UnsafePath

__all__ = ["TMP_PREFIX", "Side", "UnsafePath"]

Known = dict[str, tuple[int, int, int, str]]  # path -> (ino, size, mtime, digest)
# Digests to cache: (side, path, ino, size, mtime, digest).
Fresh = list[tuple[str, str, int, int, int, str]]


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

    def _entry(
        self,
        rel: str,
        st: os.stat_result,
        digest_needed: bool,
        known: Known | None = None,
        fresh: Fresh | None = None,
    ) -> Entry | None:
        """The entry for ``rel`` as ``st`` shows it; a file's digest from ``known`` (a
        full scan's copy of the cache) or the journal, else read, and then cached (in
        ``fresh``, written by the caller in one statement, or at once)."""
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
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if known is None:
            digest = self.journal.cached_digest(self.name, rel, *key)
        else:
            row = known.get(rel)
            digest = row[3] if row is not None and row[:3] == key else None
        if digest is None and digest_needed:
            try:
                digest = self.tree.digest(rel)
            except OSError:
                return None  # gone, or swapped for a link since it was listed
            if fresh is None:
                self.journal.cache_digest(self.name, rel, *key, digest)
            else:
                fresh.append((self.name, rel, *key, digest))
        return Entry(Kind.FILE, mode, st.st_size, digest)

    def scan(
        self, under: Iterable[str] | None = None, needs_digest: Callable[[str], bool] | None = None
    ) -> dict[str, Entry]:
        """Entries of the whole tree, or of some paths and everything below them. Files for
        which ``needs_digest`` says no are not read (their content is copied, hashed then)."""

        def need(rel: str) -> bool:
            return needs_digest is None or needs_digest(rel)

        out: dict[str, Entry] = {}
        # A full scan reads the side's digest cache in one query, and writes what it
        # learnt in one statement.
        known = self.journal.digests(self.name) if under is None else None
        fresh: Fresh = []
        for start in list(under) if under is not None else [""]:
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
                entry = self._entry(rel, st, is_dir or need(rel), known, fresh)
                if entry is not None:
                    out[rel] = entry
        self.journal.cache_digests(fresh)
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
        """The copy alone (no journal)."""
        return self.tree.copy_from(source.tree, rel, mode)

    def copy_new(
        self, source: Side, files: list[tuple[str, int]]
    ) -> tuple[list[tuple[str, int, int, str]], list[tuple[str, OSError]]]:
        """Copy many files (path, mode) from ``source`` here (a first sync): a folder at
        a time, both folders opened once through safefs and each file by its name in them
        with O_NOFOLLOW; digests cached on both sides in one statement each. Returns what
        was copied (path, mode, size, digest) and what was not, with why (gone, or a link
        now: UnsafePath)."""
        folders: dict[str, list[tuple[str, int]]] = {}
        for rel, mode in files:
            folder, _, name = rel.rpartition("/")
            folders.setdefault(folder, []).append((name, mode))
        copied: list[tuple[str, int, int, str]] = []
        failed: list[tuple[str, OSError]] = []
        ours: Fresh = []
        theirs: Fresh = []
        mine, other = self.name, source.name
        for folder, group in folders.items():
            prefix = f"{folder}/" if folder else ""
            with contextlib.ExitStack() as stack:
                try:
                    src = stack.enter_context(source.tree.directory(folder))
                    dst = stack.enter_context(self.tree.directory(folder, create=True))
                except (FileNotFoundError, UnsafePath) as exc:  # none of its files, then
                    failed.extend((prefix + name, exc) for name, _ in group)
                    continue
                for name, mode in group:
                    rel = prefix + name
                    try:
                        digest, sst, st, read = copy_at(src, dst, name, mode, self.tree.owner)
                    except NotAFile as exc:
                        failed.append((rel, UnsafePath(rel, str(exc.strerror))))
                        continue
                    except FileNotFoundError as exc:
                        failed.append((rel, exc))
                        continue
                    ours.append((mine, rel, st.st_ino, st.st_size, st.st_mtime_ns, digest))
                    if read:  # the digest is the source's too, as it was when opened
                        theirs.append(
                            (other, rel, sst.st_ino, sst.st_size, sst.st_mtime_ns, digest)
                        )
                    copied.append((rel, mode, st.st_size, digest))
        self.journal.cache_digests(ours)
        self.journal.cache_digests(theirs)
        return copied, failed

    def make_link(self, rel: str, target: str) -> None:
        self.tree.make_link(rel, target)

    def remove(self, rel: str) -> None:
        self.tree.remove(rel)

    def clean_temporaries(self) -> None:
        self.tree.clean_temporaries()
