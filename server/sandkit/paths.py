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


def data_dir() -> Path:
    """What the user keeps beyond any sandbox: host-mount@1 folders."""
    return _xdg("XDG_DATA_HOME", ".local/share")


def state_dir() -> Path:
    """Per-sandbox state: overlays, sockets, logs, journals."""
    return _xdg("XDG_STATE_HOME", ".local/state")


def ram_dir(base: Path | None = None) -> Path:
    """Guest RAM files of q35 VMs (the warm pool). They must be on tmpfs: a disk file
    would be written back as the guest touches its memory."""
    if base is None:
        base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")
    return private_dir(base / f"sandkit-{os.getuid()}", "guest memory goes there")


def runtime_dir() -> Path:
    """Sockets whose state-folder path would be too long for a Unix socket address."""
    return private_dir(Path(f"/tmp/sandkit-{os.getuid()}"), "sandbox sockets go there")


def private_dir(path: Path, why: str) -> Path:
    """A folder in a place other users can write to (/tmp, /dev/shm): made 0700, and
    refused unless it is a real folder of ours that only we can reach (another user could
    have made it first, to read or swap what we put there)."""
    import stat

    from sandkit.errors import SandkitError

    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise SandkitError(
            f"{path} is not a private folder of yours ({why}): remove it, or make it "
            "yours with mode 0700"
        )
    return path


def private_state(path: Path) -> Path:
    """A folder of sandkit's own state, 0700 whatever the umask (it holds shares, trash,
    decision logs and keys)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def host_mounts_dir() -> Path:
    """host-mount@1 storage, one folder per key (0700 each): it outlives every sandbox;
    the user removes a folder by hand (its ``kit.json`` names the kit and the path)."""
    return data_dir() / "host-mounts"
