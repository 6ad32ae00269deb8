"""This process's terminal: its size, and raw mode. Shared by the attach loops
(cli/attach.py) and the one-shot exec (cli/execute.py), which runs without asyncio."""

from __future__ import annotations

import contextlib
import os
import shutil
import termios
import tty
from collections.abc import Iterator


def terminal_size(fd: int | None = None) -> tuple[int, int]:
    """(rows, cols) of the terminal on ``fd`` (default: this process's), else 24x80."""
    if fd is not None:
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            if size.lines > 0 and size.columns > 0:  # a new pty is 0x0 until someone sets it
                return size.lines, size.columns
    size = shutil.get_terminal_size((80, 24))
    return max(size.lines, 1), max(size.columns, 1)


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[bool]:
    """Keys (Ctrl-C included) go on as bytes while inside; yields whether ``fd`` is a
    terminal (nothing changes when it is not)."""
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: keys typed ahead (during boot) are kept
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
