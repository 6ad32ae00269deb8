"""The sync journal (sqlite, one transaction per batch): the last synced state of every
path, the stat-keyed digest cache of each side, and the trash index. A kill -9 at any
moment leaves either the old or the new state of a batch, never half of it."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandkit.sync.plan import Entry, Kind

SCHEMA = """
CREATE TABLE IF NOT EXISTS base (path TEXT PRIMARY KEY, kind TEXT, mode INTEGER, size INTEGER,
                                 digest TEXT, target TEXT);
CREATE TABLE IF NOT EXISTS stat (side TEXT, path TEXT, ino INTEGER, size INTEGER, mtime INTEGER,
                                 digest TEXT, PRIMARY KEY (side, path));
CREATE TABLE IF NOT EXISTS trash (id INTEGER PRIMARY KEY, stamp TEXT, path TEXT, stored TEXT,
                                  reason TEXT);
"""


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():  # the journal names every workspace file: 0600
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.db.execute("PRAGMA synchronous=FULL")
        self.seconds = 0.0  # spent writing rows and committing (the bench's "journal")

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        started = time.perf_counter()
        self.db.execute("COMMIT")
        self.seconds += time.perf_counter() - started

    def base(self, paths: Iterable[str] | None = None) -> dict[str, Entry]:
        rows: Iterable[tuple[Any, ...]]
        if paths is None:
            rows = self.db.execute("SELECT path, kind, mode, size, digest, target FROM base")
        else:
            wanted = list(paths)
            rows = (
                r
                for p in wanted
                for r in self.db.execute(
                    "SELECT path, kind, mode, size, digest, target FROM base WHERE path = ? "
                    "OR path LIKE ? ESCAPE '\\'",
                    (p, _like_prefix(p)),
                )
            )
        return {r[0]: Entry(Kind(r[1]), r[2], r[3], r[4], r[5]) for r in rows}

    def count_files(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM base WHERE kind != 'dir'").fetchone()[0])

    def files_under(self, path: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM base WHERE kind != 'dir' AND (path = ? OR path "
            "LIKE ? ESCAPE '\\')",
            (path, _like_prefix(path)),
        ).fetchone()
        return int(row[0])

    def bytes_under(self, path: str) -> int:
        row = self.db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM base WHERE kind = 'file' AND (path = ? OR path "
            "LIKE ? ESCAPE '\\')",
            (path, _like_prefix(path)),
        ).fetchone()
        return int(row[0])

    def total_bytes(self) -> int:
        row = self.db.execute("SELECT COALESCE(SUM(size), 0) FROM base WHERE kind = 'file'")
        return int(row.fetchone()[0])

    def links(self) -> dict[str, str]:
        rows = self.db.execute("SELECT path, target FROM base WHERE kind = 'link'")
        return {r[0]: r[1] for r in rows if r[1] is not None}

    def record(self, path: str, entry: Entry | None) -> None:
        if entry is None:
            self.db.execute("DELETE FROM base WHERE path = ?", (path,))
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO base VALUES (?, ?, ?, ?, ?, ?)",
                (path, str(entry.kind), entry.mode, entry.size, entry.digest, entry.target),
            )

    def record_files(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        """Files as both sides now hold them: (path, mode, size, digest), one statement."""
        started = time.perf_counter()
        self.db.executemany("INSERT OR REPLACE INTO base VALUES (?, 'file', ?, ?, ?, NULL)", rows)
        self.seconds += time.perf_counter() - started

    def digests(self, side: str) -> dict[str, tuple[int, int, int, str]]:
        """The whole digest cache of a side, for a full scan: path -> (ino, size, mtime,
        digest), one query instead of one per file."""
        rows = self.db.execute(
            "SELECT path, ino, size, mtime, digest FROM stat WHERE side = ?", (side,)
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def cache_digests(self, rows: Iterable[tuple[str, str, int, int, int, str]]) -> None:
        """(side, path, ino, size, mtime, digest) rows, in one statement."""
        started = time.perf_counter()
        self.db.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.seconds += time.perf_counter() - started

    def cached_digest(self, side: str, path: str, ino: int, size: int, mtime: int) -> str | None:
        row = self.db.execute(
            "SELECT ino, size, mtime, digest FROM stat WHERE side = ? AND path = ?", (side, path)
        ).fetchone()
        return row[3] if row and tuple(row[:3]) == (ino, size, mtime) else None

    def cache_digest(
        self, side: str, path: str, ino: int, size: int, mtime: int, digest: str
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?)",
            (side, path, ino, size, mtime, digest),
        )

    def trashed(self, stamp: str, path: str, stored: str, reason: str) -> None:
        self.db.execute(
            "INSERT INTO trash (stamp, path, stored, reason) VALUES (?, ?, ?, ?)",
            (stamp, path, stored, reason),
        )

    def trash(self) -> list[tuple[int, str, str, str, str]]:
        return list(
            self.db.execute("SELECT id, stamp, path, stored, reason FROM trash ORDER BY id")
        )

    def close(self) -> None:
        self.db.close()


def _like_prefix(path: str) -> str:
    escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}/%"
