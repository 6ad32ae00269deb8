"""Terminal output helpers: progress bars and a boot spinner on stderr (only on a TTY)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence


class ProgressLine:
    def __init__(self, title: str) -> None:
        self.title = title
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self._spin = 0

    def step(self, label: str, index: int, total: int) -> None:
        width = 24
        filled = width * index // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        text = f"{self.title}: [{bar}] {index}/{total} {label}"
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
            if index >= total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def spin(self, label: str) -> None:
        if not self.tty:
            return
        frames = "|/-\\"
        self._spin += 1
        elapsed = time.monotonic() - self.started
        sys.stderr.write(
            f"\r\033[K{frames[self._spin % 4]} {self.title}: {label} ({elapsed:.1f} s)"
        )
        sys.stderr.flush()

    def clear(self) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    """A span as ls and pool status show it: 3m05s, 2h07m."""
    if seconds is None:
        return "-"
    whole = max(int(seconds), 0)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 60}m{whole % 60:02d}s"


def since(started: float | None) -> str:
    """Time since ``started`` (epoch seconds), or "-"."""
    return duration(time.time() - started) if started else "-"
