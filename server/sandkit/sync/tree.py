"""Reading and writing one side of the sync (a directory tree): entries with digests
from the journal's stat cache, atomic writes that keep modes, trash before loss."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from sandkit.sync.ignore import Ignore
from sandkit.sync.journal import Journal
from sandkit.sync.plan import Entry, Kind

CHUNK = 1 << 20
TMP_PREFIX = ".sandkit-tmp-"


class Side:
    def __init__(
        self,
        name: str,
        root: Path,
        journal: Journal,
        ignore: Ignore,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self.name, self.root, self.journal, self.ignore = name, root, journal, ignore
        self.owner = owner  # chown what we write here (root only)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def entry(self, rel: str, digest_needed: bool = True) -> Entry | None:
        try:
            st = os.lstat(self.path(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            return Entry(Kind.DIR, mode)
        if stat.S_ISLNK(st.st_mode):
            return Entry(Kind.LINK, 0o777, target=str(self.path(rel).readlink()))
        if not stat.S_ISREG(st.st_mode):
            return None  # sockets, fifos, devices: not synced
        digest = self.journal.cached_digest(self.name, rel, st.st_ino, st.st_size, st.st_mtime_ns)
        if digest is None and digest_needed:
            try:
                with self.path(rel).open("rb") as f:
                    digest = hashlib.file_digest(f, "blake2b").hexdigest()
            except OSError:
                return None
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
                if self.ignore(start) or any(self.ignore(p, True) for p in _parents(start)):
                    continue
                entry = self.entry(start, need(start))
                if entry is None:
                    continue
                out[start] = entry
                if entry.kind is not Kind.DIR:
                    continue
            for base, dirs, files in os.walk(self.path(start)):
                rel_base = os.path.relpath(base, self.root)
                rel_base = "" if rel_base == "." else rel_base
                kept = []
                for d in dirs:
                    rel = f"{rel_base}/{d}" if rel_base else d
                    if self.ignore(rel, True):
                        continue
                    entry = self.entry(rel)
                    if entry is not None:
                        out[rel] = entry
                        if entry.kind is Kind.DIR:
                            kept.append(d)
                dirs[:] = kept
                for name in files:
                    rel = f"{rel_base}/{name}" if rel_base else name
                    if self.ignore(rel) or name.startswith(TMP_PREFIX):
                        continue
                    entry = self.entry(rel, need(rel))
                    if entry is not None:
                        out[rel] = entry
        return out

    # -- writing ----------------------------------------------------------------------------
    def _chown(self, path: Path) -> None:
        if self.owner is not None:
            os.lchown(path, *self.owner)

    def make_dir(self, rel: str, mode: int) -> None:
        path = self.path(rel)
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        path.mkdir(exist_ok=True)
        path.chmod(mode)
        self._chown(path)

    def write_from(self, rel: str, source: Path, mode: int) -> str:
        """Copy ``source`` here atomically (temp file, then rename), returning its digest."""
        hexdigest, st = self.copy_in(rel, source, mode)
        self.journal.cache_digest(self.name, rel, st.st_ino, st.st_size, st.st_mtime_ns, hexdigest)
        return hexdigest

    def copy_in(self, rel: str, source: Path, mode: int) -> tuple[str, os.stat_result]:
        """The copy alone, safe to run in a worker thread (no journal)."""
        target = self.path(rel)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        tmp = target.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{target.name}"[:250])
        digest = hashlib.blake2b()
        try:
            with source.open("rb") as src, tmp.open("wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
            tmp.chmod(mode)
            self._chown(tmp)
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest.hexdigest(), os.lstat(target)

    def make_link(self, rel: str, target: str) -> None:
        path = self.path(rel)
        tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}")
        tmp.symlink_to(target)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        tmp.replace(path)
        if self.owner is not None:
            os.lchown(path, *self.owner)

    def remove(self, rel: str) -> None:
        path = self.path(rel)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def clean_temporaries(self) -> None:
        for tmp in self.root.rglob(f"{TMP_PREFIX}*"):
            tmp.unlink(missing_ok=True)


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
