"""Run a program as root of a new user namespace (see vm/userns.py, which starts this).

    python3 -I -S nsexec.py READY_FD GO_FD DEATH_SIGNAL PROGRAM [ARG...]

Makes the namespace, says so on READY_FD, waits on GO_FD while the parent writes the id
maps (newuidmap/newgidmap need a process outside the namespace), then becomes uid/gid 0
inside it and execs PROGRAM, which keeps this pid. With a DEATH_SIGNAL (not 0), PROGRAM
gets it when the parent dies: set here, after the ids change (a change clears it), and
right before the exec, which keeps it. Standard library only: it runs before anything
else and must start fast."""

import ctypes
import os
import resource
import sys

CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    ready, go, death, program = int(argv[1]), int(argv[2]), int(argv[3]), argv[4:]
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER) != 0:
        err = ctypes.get_errno()
        os.write(2, f"nsexec: unshare(CLONE_NEWUSER): {os.strerror(err)}\n".encode())
        return 125
    os.write(ready, b"u")
    os.close(ready)
    if os.read(go, 1) != b"1":  # the parent could not map us: it says why
        return 125
    os.close(go)
    os.setresgid(0, 0, 0)
    os.setgroups([])
    os.setresuid(0, 0, 0)
    # Raising the hard limit needs privileges outside the namespace; the soft one may go
    # up to it (virtiofsd keeps a descriptor per guest-visible inode).
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if death and libc.prctl(PR_SET_PDEATHSIG, death, 0, 0, 0) != 0:
        os.write(2, b"nsexec: prctl(PR_SET_PDEATHSIG) failed\n")
        return 125
    if death and os.getppid() != parent:  # the parent died before the signal was set
        return 125
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        os.write(2, f"nsexec: {program[0]}: {exc.strerror}\n".encode())
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
