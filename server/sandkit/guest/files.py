"""Requests answered in the agent's own process (starting programs is slow under TCG):
reading and writing files, and a pooled VM's adoption."""

from __future__ import annotations

import fcntl
import os
import stat
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
    """Write a file as root and give it to its owner: kits' files, without a shell. False
    when it exists and ``keep`` says to leave it. The path is walked from / one name at a
    time (the agent is root, the folders may be the guest user's): a link on the way is
    followed only when root owns it (/bin, /lib), never one the user could have planted,
    and the file itself is made new (O_EXCL, O_NOFOLLOW), never written through a link.
    Missing folders are made as `mkdir -p` run by the owner would make them: theirs."""
    path = str(req["path"])
    owner = str(req.get("user") or "root")
    uid, gid = (0, 0) if owner in ("root", "0") else owner_ids(owner)
    folder, name = os.path.split(path)
    dirfd = walk(folder, uid, gid)
    try:
        if req.get("keep") and lexists(name, dirfd):
            return False
        data = b64decode(str(req.get("data", "")))
        if req.get("append"):  # e.g. a CA added to a bundle that is big to send back and forth
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(name, flags, 0o644, dir_fd=dirfd)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            return True
        tmp = f"{name}.sandkit-tmp"
        try:
            os.unlink(tmp, dir_fd=dirfd)  # a leftover (or a planted link): never opened
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=dirfd)
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fchmod(fd, int(req.get("mode", 0o644)))
            if uid:
                os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        return True
    finally:
        os.close(dirfd)


def owner_ids(owner: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwuid(int(owner)) if owner.isdigit() else pwd.getpwnam(owner)
    return entry.pw_uid, entry.pw_gid


DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40  # as the kernel's own lookup


def walk(folder: str, uid: int, gid: int) -> int:
    """A descriptor on ``folder``, opened from / one name at a time, the missing ones made
    (0755, given to uid:gid). A link is followed only when root owns it: the guest user
    cannot make one, so a link of theirs cannot lead a root write out of their folders."""
    names = [n for n in reversed(folder.split("/")) if n not in ("", ".")]
    fd = os.open("/", DIR)
    links = 0
    try:
        while names:
            name = names.pop()
            try:
                next_fd = os.open(name, DIR, dir_fd=fd)
            except FileNotFoundError:
                next_fd = make_dir(fd, name, uid, gid)
            except OSError as exc:  # ELOOP or ENOTDIR: a link, or no folder at all
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode) or st.st_uid != 0 or links == MAX_LINKS:
                    raise OSError(
                        exc.errno,
                        f"{name!r} in {folder!r}: not a folder, or a link root does not own",
                    ) from None
                links += 1
                target = os.readlink(name, dir_fd=fd)
                names.extend(n for n in reversed(target.split("/")) if n not in ("", "."))
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", DIR)
                continue
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_dir(dirfd: int, name: str, uid: int, gid: int) -> int:
    """The folder ``name`` made and opened, its owner's if it was made here (not if
    another made it first); the open refuses a link swapped in meanwhile."""
    try:
        os.mkdir(name, 0o755, dir_fd=dirfd)
    except FileExistsError:
        return os.open(name, DIR, dir_fd=dirfd)
    fd = os.open(name, DIR, dir_fd=dirfd)
    if uid:
        os.fchown(fd, uid, gid)
    return fd


def lexists(name: str, dirfd: int) -> bool:
    try:
        os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


_LIBC: list[Any] = []  # [ctypes.CDLL(None)], made once: ctypes is slow to set up under TCG
MS_BIND, MNT_DETACH = 4096, 2


def libc() -> Any:
    """This process's C library, for mount(2) and reboot(2), with both functions looked
    up (a pooled VM does this before its snapshot, so adoptions find them ready)."""
    if not _LIBC:
        import ctypes

        handle = ctypes.CDLL(None, use_errno=True)
        _ = handle.mount, handle.umount2, handle.reboot
        _LIBC.append(handle)
    return _LIBC[0]


def adopt(req: dict[str, Any]) -> dict[str, float]:
    """A pooled VM becomes a sandbox, in this process (starting programs is slow under
    TCG): the host's clock, its hostname, a fresh machine-id, host entropy mixed into the
    RNG and a reseed, and the workspace share bound at the workspace's path. ``rehearse``
    (a member, before its pause) undoes the bind at once: the point is that this code
    and the kernel's are translated before an adoption needs them. Returns each step's
    milliseconds, for the host's log."""
    import socket

    steps: dict[str, float] = {}
    mark = time.monotonic()

    def lap(step: str) -> None:
        nonlocal mark
        now = time.monotonic()
        steps[step] = round(1000 * (now - mark), 1)
        mark = now

    time.clock_settime(time.CLOCK_REALTIME, float(req["time"]))
    name = str(req["hostname"])
    socket.sethostname(name)
    with open("/etc/hostname", "w") as f:
        f.write(name + "\n")
    with open("/etc/hosts", "w") as f:
        f.write(f"127.0.0.1 localhost\n127.0.1.1 {name}\n::1 localhost\n")
    with open("/etc/machine-id", "w") as f:
        f.write(str(req["machine_id"]) + "\n")
    lap("names")
    fd = os.open("/dev/urandom", os.O_WRONLY)
    try:
        os.write(fd, bytes.fromhex(str(req["seed"])))
        fcntl.ioctl(fd, 0x5207)  # RNDRESEEDCRNG: the next bytes come from the mixed pool
    finally:
        os.close(fd)
    lap("entropy")
    workspace = req.get("workspace")
    if workspace:
        os.makedirs(workspace, exist_ok=True)
        if libc().mount(b"/run/sandkit/share", workspace.encode(), None, MS_BIND, None) != 0:
            import ctypes

            raise OSError(ctypes.get_errno(), f"cannot bind the workspace at {workspace}")
        if req.get("rehearse"):
            libc().umount2(workspace.encode(), MNT_DETACH)
            os.rmdir(workspace)
        lap("workspace")
    return steps
