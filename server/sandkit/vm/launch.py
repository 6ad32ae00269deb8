"""The machine's child processes, virtiofsd and QEMU, started so that they die with the
process that started them (the supervisor): a VM without its supervisor has no proxy, no
sync and no owner, and would only hold memory and the sandbox's files.

The kernel's parent-death signal (PR_SET_PDEATHSIG) does it: set by `setpriv` just before
it execs the program (no preexec_fn in a threaded process), or by vm/nsexec.py for a
virtiofsd in a user namespace (changing ids clears the signal, so it is set after). It
follows the thread that forked, which here is the event loop's, alive as long as the
supervisor. virtiofsd's own sandboxed child gets SIGTERM when its parent dies (virtiofsd
sets that itself)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

from sandkit.vm import userns
from sandkit.vm.console import VMError, tail

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"


def _tool(name: str, why: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise VMError(f"{name} is missing ({why}): run scripts/setup, or install Debian's {name}")
    return found


def socat() -> str:
    return _tool("socat", "it carries the guest's connections to the proxy")


def owned(argv: list[str]) -> list[str]:
    """``argv`` run so that the kernel SIGKILLs it when its parent dies."""
    setpriv = _tool("setpriv", "util-linux; it ties the VM's processes to their supervisor")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


async def start_virtiofsd(
    share: Path, sock: Path, log_path: Path, *, owned_by_parent: bool = True
) -> asyncio.subprocess.Process:
    """virtiofsd serving ``share`` on the vhost-user socket ``sock``, once it says it
    waits for QEMU. Its log is appended to ``log_path``."""
    if not Path(VIRTIOFSD).exists():
        raise VMError(f"{VIRTIOFSD} is missing: run scripts/setup (Debian's qemu-system-common)")
    # We listen and hand virtiofsd the socket (--fd): with --socket-path it first
    # writes a pid file under /var/run/virtiofsd, which only root may.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen(1)
    argv = [
        VIRTIOFSD,
        f"--fd={listener.fileno()}",
        *("-o", f"source={share}", "-o", "cache=auto"),
        *("-o", "timeout=0.05"),  # the guest sees host edits within 50 ms (default 1 s)
        *("-o", "xattr"),
    ]
    log_file = log_path.open("ab")
    start = log_file.tell()  # the log is appended to: read only this start's lines
    try:
        if os.geteuid() == 0:
            proc = await asyncio.create_subprocess_exec(
                *(owned(argv) if owned_by_parent else argv),
                stdout=log_file,
                stderr=log_file,
                pass_fds=(listener.fileno(),),
                start_new_session=True,
            )
        else:
            # As anyone else: Debian 12's virtiofsd is QEMU's C one (the Rust virtiofsd,
            # which can drop privileges itself, is not packaged for bookworm). It needs
            # root's powers to switch to each guest user's ids, so it gets them inside a
            # user namespace where the guest's agent is the user and the guest's other
            # users are the user's subordinate ids (vm/userns.py, whose helper sets the
            # parent-death signal). The file limit can only go up to the user's hard limit
            # there (nsexec raises the soft one).
            argv.insert(1, "--rlimit-nofile=0")
            proc = await userns.spawn(
                argv, log=log_file, pass_fds=(listener.fileno(),), die_with_parent=owned_by_parent
            )
    finally:
        log_file.close()
        listener.close()  # virtiofsd has its own copy
    await _started(proc, log_path, start)
    return proc


async def _started(proc: asyncio.subprocess.Process, log_path: Path, start: int) -> None:
    # It has started once it says it waits for QEMU (QEMU's connect would wait too, but a
    # virtiofsd that exits should be reported as its own failure).
    for _ in range(500):
        if proc.returncode is not None:
            break
        with log_path.open("rb") as f:
            f.seek(start)
            said = f.read(65536)
        if b"Waiting for vhost-user socket connection" in said:
            return
        await asyncio.sleep(0.01)
    raise VMError("virtiofsd did not start: " + tail(log_path, 5))


async def start_qemu(
    argv: list[str], log_path: Path, cwd: Path | None, *, owned_by_parent: bool = True
) -> asyncio.subprocess.Process:
    """QEMU in a session of its own (killpg reaches what it forks), output to ``log_path``."""
    with log_path.open("ab") as log_file:
        return await asyncio.create_subprocess_exec(
            *(owned(argv) if owned_by_parent else argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            cwd=cwd,
            start_new_session=True,
        )
