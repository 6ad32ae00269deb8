"""Requests answered in the agent's own process (starting programs is slow under TCG):
reading and writing files, and a pooled VM's adoption."""

from __future__ import annotations

import fcntl
import os
import time

from .wire import b64decode, b64encode

# Not `typing`: each import costs tens of milliseconds under TCG.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def read_file(path: str) -> str | None:
    """A file's bytes (base64), or None if there is none: without starting `cat`."""
    try:
        with open(path, "rb") as f:
            return b64encode(f.read()).decode()
    except (FileNotFoundError, NotADirectoryError):
        return None


def write_file(req: dict[str, Any]) -> bool:
    """Write a file as root, then give it to its owner: kits' files, without a shell.
    False when it exists and ``keep`` says to leave it."""
    import pwd

    path = str(req["path"])
    if req.get("keep") and os.path.lexists(path):
        return False
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    if req.get("append"):  # e.g. a CA added to a bundle that is big to send back and forth
        with open(path, "ab") as f:
            f.write(b64decode(str(req.get("data", ""))))
        return True
    tmp = f"{path}.sandkit-tmp"
    with open(tmp, "wb") as f:
        f.write(b64decode(str(req.get("data", ""))))
    os.chmod(tmp, int(req.get("mode", 0o644)))
    owner = str(req.get("user") or "root")
    if owner not in ("root", "0"):
        entry = pwd.getpwuid(int(owner)) if owner.isdigit() else pwd.getpwnam(owner)
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
    os.replace(tmp, path)
    return True


def adopt(req: dict[str, Any]) -> None:
    """A pooled VM becomes a sandbox, in this process (starting programs is slow under
    TCG): the host's clock, its hostname, a fresh machine-id, host entropy mixed into the
    RNG and a reseed, and the workspace share bound at the workspace's path."""
    import ctypes
    import socket

    time.clock_settime(time.CLOCK_REALTIME, float(req["time"]))
    name = str(req["hostname"])
    socket.sethostname(name)
    with open("/etc/hostname", "w") as f:
        f.write(name + "\n")
    with open("/etc/hosts", "w") as f:
        f.write(f"127.0.0.1 localhost\n127.0.1.1 {name}\n::1 localhost\n")
    with open("/etc/machine-id", "w") as f:
        f.write(str(req["machine_id"]) + "\n")
    fd = os.open("/dev/urandom", os.O_WRONLY)
    try:
        os.write(fd, bytes.fromhex(str(req["seed"])))
        fcntl.ioctl(fd, 0x5207)  # RNDRESEEDCRNG: the next bytes come from the mixed pool
    finally:
        os.close(fd)
    workspace = req.get("workspace")
    if workspace:
        os.makedirs(workspace, exist_ok=True)
        libc = ctypes.CDLL(None, use_errno=True)
        ms_bind = 4096
        if libc.mount(b"/run/sandkit/share", workspace.encode(), None, ms_bind, None) != 0:
            raise OSError(ctypes.get_errno(), f"cannot bind the workspace at {workspace}")
