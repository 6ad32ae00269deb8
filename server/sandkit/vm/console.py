"""What a VM said: the last lines of its console and logs, quoted in every launch error."""

from __future__ import annotations

from pathlib import Path

from sandkit.errors import SandkitError


class VMError(SandkitError):
    """A VM would not start or stopped unexpectedly; carries the console's last lines."""

    def __init__(self, message: str, console: str = "") -> None:
        self.console = console
        text = message
        if console.strip():
            text += "\n--- guest console (last lines) ---\n" + console.rstrip()
        super().__init__(text)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` of a log ("" if there is none yet)."""
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
