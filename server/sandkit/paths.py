"""Where sandkit keeps things, following the XDG base directory spec."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "")
    # The spec says relative values are invalid and must be ignored.
    base = Path(value) if value and Path(value).is_absolute() else Path.home() / fallback
    return base / "sandkit"


def config_dir() -> Path:
    """Secrets, the CA key, user settings."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def cache_dir() -> Path:
    """Guest images and snapshots: rebuildable, may be large."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def state_dir() -> Path:
    """Per-sandbox state: overlays, sockets, logs, journals."""
    return _xdg("XDG_STATE_HOME", ".local/state")


def ram_dir(base: Path | None = None) -> Path:
    """Guest RAM files of q35 VMs (the warm pool). They must be on tmpfs: a disk file
    would be written back as the guest touches its memory."""
    import stat

    from sandkit.errors import SandkitError

    if base is None:
        base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")
    path = base / f"sandkit-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()  # a shared folder: it must be ours, and ours alone
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise SandkitError(
            f"{path} is not a private folder of yours (guest memory goes there): "
            "remove it, or make it yours with mode 0700"
        )
    return path
