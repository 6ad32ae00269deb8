"""host-mount@1 storage on the host: one private folder per key, whose ``data`` folder
virtiofsd shares into the sandbox. The key came through a model a stranger's kit shaped,
and the guest (root, hostile) writes in ``data``: every step here checks the key, opens
folders relative to their parent without following links, and refuses what is not a
folder."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from pathlib import Path

from sandkit.errors import SandkitError
from sandkit.fsio import write_atomic
from sandkit.paths import host_mounts_dir, private_state

# host-mount@1 keys (kits/v3_apply.py host_mount_key: a digest's hex) name one folder each.
# The key reaches the supervisor in a model a kit shaped: anything else is refused here.
_HOST_MOUNT_KEY = re.compile(r"[0-9a-f]{8,64}")
HOST_MOUNT_DATA = "data"  # the shared folder, inside the key's private one


def host_mount_dir(key: str) -> Path:
    """The key's folder (0700, sandkit's); the guest sees its ``data`` folder only."""
    if not _HOST_MOUNT_KEY.fullmatch(key):
        raise SandkitError(f"host-mount key {key[:80]!r} is not a storage key sandkit made")
    return host_mounts_dir() / key


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def host_mount_folder(
    key: str, mode: int, owner: tuple[int, int] | None, about: dict[str, str]
) -> tuple[Path, bool]:
    """The shared folder of host-mount ``key``, made when missing: (its path, whether it
    was made now). Its private parent is 0700 whatever the umask (another local user must
    not read a sandbox's caches or logins); a new shared folder gets ``mode`` (setuid
    dropped) and ``owner`` (the guest's agent, as virtiofsd shows it), an existing one is
    left as the guest made it. Nothing here follows a link: the guest writes in the
    shared folder, and a link, fifo or device where a folder should be is refused."""
    parent = private_state(host_mounts_dir())
    folder = host_mount_dir(key)
    fd = os.open(parent, _DIR)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(key, 0o700, dir_fd=fd)
        kfd = _open_dir(key, fd, folder)
        try:
            info = os.fstat(kfd)
            if info.st_uid != os.geteuid():
                raise SandkitError(f"{folder} is not yours: remove it")
            os.fchmod(kfd, 0o700)
            try:
                os.mkdir(HOST_MOUNT_DATA, 0o700, dir_fd=kfd)
                made = True
            except FileExistsError:
                made = False
            dfd = _open_dir(HOST_MOUNT_DATA, kfd, folder / HOST_MOUNT_DATA)
            try:
                if made:  # owner first: a chown may clear the setgid bit
                    if owner is not None:
                        os.fchown(dfd, *owner)
                    os.fchmod(dfd, mode & 0o3777)
            finally:
                os.close(dfd)
        finally:
            os.close(kfd)
    finally:
        os.close(fd)
    text = json.dumps(about, indent=1, sort_keys=True) + "\n"
    note = folder / "kit.json"
    with contextlib.suppress(OSError):  # a note for the user, never needed to run
        if made or not note.exists():
            write_atomic(note, text.encode(), 0o600)
    return folder / HOST_MOUNT_DATA, made


def _open_dir(name: str, dir_fd: int, shown: Path) -> int:
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SandkitError(f"{shown} is not a folder (a link?): remove it") from None
        raise
