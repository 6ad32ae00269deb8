"""Start a process as root of its own user namespace, with the guest's ids mapped onto the
invoking user and their subordinate ids (hostcheck.guest_map), as rootless Podman does
with newuidmap/newgidmap. Nothing here is setuid of ours; the kernel gives the process
root's powers over those ids only, never over anything else on the host."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from sandkit.errors import SetupError
from sandkit.vm import hostcheck

HELPER = Path(__file__).with_name("nsexec.py")


def map_args(kind: str) -> list[str]:
    """newuidmap ("u") or newgidmap ("g") arguments after the pid."""
    own = os.getuid() if kind == "u" else os.getgid()
    lines = hostcheck.guest_map(own, hostcheck.subordinate_range(kind))
    return [str(n) for line in lines for n in line]


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    if proc.returncode:
        raise SetupError(
            f"{argv[0]} refused the guest's id map: {out.decode(errors='replace').strip()} "
            f"(see `sandkit` requirements in the README: subordinate ids in /etc/subuid "
            f"and /etc/subgid, Debian's uidmap)"
        )


async def spawn(
    argv: list[str],
    *,
    log: IO[bytes],
    pass_fds: tuple[int, ...] = (),
    timeout: float = 10.0,
    die_with_parent: bool = True,
) -> asyncio.subprocess.Process:
    """``argv`` running as uid 0 of a new user namespace (in a session of its own, so
    that killpg reaches what it forks). Its output goes to ``log``. Unless told
    otherwise it is SIGKILLed when this process's forking thread (the event loop's) ends."""
    hostcheck.require()
    uid_map, gid_map = map_args("u"), map_args("g")  # before starting: errors say the fix
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            str(HELPER),
            str(ready_w),
            str(go_r),
            str(int(signal.SIGKILL) if die_with_parent else 0),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(ready_w, go_r, *pass_fds),
            start_new_session=True,
        )
    finally:
        os.close(ready_w)
        os.close(go_r)
    try:
        async with asyncio.timeout(timeout):
            said = await asyncio.to_thread(os.read, ready_r, 1)
        if said != b"u":
            await proc.wait()
            raise SetupError(f"could not create a user namespace for {argv[0]} (see its log)")
        await _run("newuidmap", str(proc.pid), *uid_map)
        await _run("newgidmap", str(proc.pid), *gid_map)
        os.write(go_w, b"1")
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        os.close(ready_r)
        os.close(go_w)
    return proc


def as_namespace_root(argv: list[str]) -> list[str]:
    """``argv`` run as root of a user namespace in which the user is root and their
    subordinate ids are mapped after it (util-linux's --map-auto, from /etc/subuid): it
    may change any file that belongs to the user or to one of those ids, nothing else."""
    return ["unshare", "--user", "--map-root-user", "--map-auto", "--", *argv]


def remove_tree(path: Path) -> None:
    """Remove ``path`` whole, including what belongs to the user's subordinate ids (what
    the guest's root made in a share, a half-made root filesystem): as anyone but root
    only a user namespace can remove those."""
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path) and os.geteuid() != 0:
        subprocess.run(
            as_namespace_root(["rm", "-rf", "--one-file-system", "--", str(path)]),
            capture_output=True,
            check=False,
            timeout=300,
        )
