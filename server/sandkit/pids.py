"""Processes by PID: whether one still runs (supervisors, QEMU, builders of snapshots)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def alive(pid: int | None) -> bool:
    """Whether a process runs (a zombie does not); one we may not signal does."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True
