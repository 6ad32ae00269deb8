"""The agent's children: spawning them (with or without a PTY, as root or as another
user), feeding their stdin, reading their output under flow control, and their exits.

Flow control: an exec may carry a "window" (bytes). Once that much of its output has been
sent and not acknowledged ({"op": "ack", "id": N, "bytes": n}), its pty/pipes are not read
until the host acknowledges more: the child blocks on a full pipe, nothing piles up."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import termios

from .wire import READ, b64decode, output_event

# Not `typing`: each import costs tens of milliseconds under TCG.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MIN_WINDOW = READ  # a smaller window would stall a child for good


class Proc:
    def __init__(
        self, rid: object, pid: int, fds: dict[int, str], stdin_fd: int | None, pty: int | None
    ) -> None:
        self.id, self.pid, self.fds, self.stdin_fd, self.pty = rid, pid, fds, stdin_fd, pty
        self.status: int | None = None
        self.pending_in = b""
        self.close_stdin = False
        self.window: int | None = None  # output bytes it may have unacknowledged
        self.unacked = 0

    def paused(self) -> bool:
        return self.window is not None and self.unacked >= self.window


class Stdio:
    """A child's fds 0-2 being made: the agent's fds the child gets as 0, 1 and 2 (closed
    here once it runs), the terminal's path for a pty (opened in the child, which makes it
    the controlling terminal of its session) and the agent's ends (its output by stream
    name, its stdin)."""

    def __init__(self, req: dict[str, Any]) -> None:
        self.std: list[int] = []  # the child's 0, 1, 2, as fds of the agent
        self.tty: str | None = None
        self.parent_fds: dict[int, str] = {}
        self.child_fds: list[int] = []
        self.master: int | None = None
        self.stdin_fd: int | None = None
        if req.get("pty"):
            self.master, slave = os.openpty()
            set_size(self.master, req.get("rows", 24), req.get("cols", 80))
            self.tty = os.ttyname(slave)
            self.std = [slave] * 3
            self.child_fds = [slave]
            self.parent_fds = {self.master: "stdout"}
            self.stdin_fd = self.master
            return
        if req.get("stdin"):
            r, w = os.pipe2(os.O_CLOEXEC)
            self.stdin_fd = w
        else:  # an empty pipe, not /dev/null: a guest that deleted /dev still runs commands
            r, w = os.pipe2(os.O_CLOEXEC)
            os.close(w)
        self.std.append(r)
        self.child_fds.append(r)
        for name in ("stdout", "stderr"):
            r, w = os.pipe2(os.O_CLOEXEC)
            self.std.append(w)
            self.child_fds.append(w)
            self.parent_fds[r] = name

    def actions(self) -> list[tuple[Any, ...]]:
        """posix_spawn's file actions."""
        if self.tty is not None:
            return [
                (os.POSIX_SPAWN_OPEN, 0, self.tty, os.O_RDWR, 0),
                (os.POSIX_SPAWN_DUP2, 0, 1),
                (os.POSIX_SPAWN_DUP2, 0, 2),
            ]
        return [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(self.std)]

    def failed(self) -> None:
        """No child: every fd goes (a pty's stdin is its master, among parent_fds)."""
        stdin = [self.stdin_fd] if self.stdin_fd is not None and self.master is None else []
        for fd in [*self.child_fds, *self.parent_fds, *stdin]:
            os.close(fd)

    def started(self) -> None:
        for fd in self.child_fds:
            os.close(fd)
        for fd in self.parent_fds:
            os.set_blocking(fd, False)
        if self.stdin_fd is not None:
            os.set_blocking(self.stdin_fd, False)


class Procs:
    """The process table: by request id, by the agent's fd (with the stream's name) and by
    pid. ``send`` queues a message for the host; ``forget`` stops polling an fd."""

    def __init__(
        self,
        env: dict[str, str],
        send: Callable[[dict[str, object]], None],
        forget: Callable[[int], None],
    ) -> None:
        self.env = env
        self.send = send
        self.forget = forget
        self.procs: dict[object, Proc] = {}  # request id -> Proc
        self.by_fd: dict[int, tuple[Proc, str]] = {}  # fd -> (Proc, stream name)
        self.by_pid: dict[int, Proc] = {}

    # -- requests -------------------------------------------------------------------------
    def spawn(self, rid: object, req: dict[str, Any]) -> None:
        argv = [str(a) for a in req["argv"]]
        uid, gid, home, user = identity(str(req.get("user") or "root"))
        env = child_env(self.env, req, home, user)
        cwd = req.get("cwd") or home
        try:
            stdio = Stdio(req)  # a pty needs /dev/ptmx, which a guest can delete
        except OSError as exc:
            self.cannot_run(rid, argv, exc)
            return
        try:
            os.chdir(cwd)
            pid = launch(argv, env, stdio, uid, gid, user)
        except OSError as exc:
            stdio.failed()
            self.cannot_run(rid, argv, exc)
            return
        finally:
            os.chdir("/")
        stdio.started()
        proc = Proc(rid, pid, dict(stdio.parent_fds), stdio.stdin_fd, stdio.master)
        window = req.get("window")
        if isinstance(window, int) and window > 0:
            proc.window = max(window, MIN_WINDOW)
        self.procs[rid] = proc
        self.by_pid[pid] = proc
        for fd, name in stdio.parent_fds.items():
            self.by_fd[fd] = (proc, name)
        started: dict[str, object] = {"op": "started", "id": rid, "pid": pid}
        if proc.window is not None:
            started["window"] = proc.window  # the host acknowledges output from now on
        self.send(started)

    def cannot_run(self, rid: object, argv: list[str], exc: OSError) -> None:
        """An exec that never started ends as a shell's would: 127 (not found) or 126."""
        message = f"sandkit: cannot run {argv[0]!r}: {exc.strerror}\n".encode()
        self.send(output_event(rid, "stderr", message))
        self.send({"op": "exit", "id": rid, "code": 127 if exc.errno == 2 else 126})

    def ack(self, rid: object, req: dict[str, Any]) -> None:
        proc = self.procs.get(rid)
        if proc is not None:
            proc.unacked = max(0, proc.unacked - int(req.get("bytes", 0)))

    def stdin(self, rid: object, req: dict[str, Any]) -> None:
        proc = self.procs.get(rid)
        if proc is not None:
            proc.pending_in += b64decode(req.get("data", ""))
            proc.close_stdin = proc.close_stdin or bool(req.get("eof"))
            self.feed(proc)

    def resize(self, rid: object, req: dict[str, Any]) -> None:
        proc = self.procs.get(rid)
        if proc is not None and proc.pty is not None:
            set_size(proc.pty, req.get("rows", 24), req.get("cols", 80))

    def kill(self, rid: object, req: dict[str, Any]) -> None:
        proc = self.procs.get(rid)
        if proc is not None and proc.status is None:
            target = -proc.pid if proc.pty is not None else proc.pid
            os.kill(target, int(req.get("signal", signal.SIGTERM)))

    # -- events ---------------------------------------------------------------------------
    def event(self, fd: int, event: int) -> None:
        """poll's news of one of the agent's ends of a child's fds."""
        if fd in self.by_fd and event & (select.POLLIN | select.POLLHUP | select.POLLERR):
            self.child_output(fd)
        if event & select.POLLOUT:
            for proc in list(self.procs.values()):
                if proc.stdin_fd == fd:
                    self.feed(proc)

    def feed(self, proc: Proc) -> None:
        if proc.stdin_fd is None:
            return
        try:
            while proc.pending_in:
                n = os.write(proc.stdin_fd, proc.pending_in[:READ])
                proc.pending_in = proc.pending_in[n:]
        except BlockingIOError:
            return
        except OSError:
            proc.pending_in = b""
        if proc.close_stdin and not proc.pending_in:
            if proc.pty is not None:
                os.write(proc.pty, b"\x04")
            else:
                self.forget(proc.stdin_fd)
                os.close(proc.stdin_fd)
            proc.stdin_fd = None if proc.pty is None else proc.stdin_fd
            proc.close_stdin = False

    def child_output(self, fd: int) -> None:
        proc, name = self.by_fd[fd]
        if proc.paused():  # a hang-up reported while paused: read once acknowledged
            return
        try:
            data = os.read(fd, READ)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's other side is gone
            data = b""
        if data:
            proc.unacked += len(data)
            self.send(output_event(proc.id, name, data))
            return
        self.forget(fd)
        del self.by_fd[fd]
        del proc.fds[fd]
        if fd != proc.stdin_fd:
            os.close(fd)
        self.maybe_done(proc)

    def reaped(self, pid: int, status: int) -> None:
        proc = self.by_pid.pop(pid, None)
        if proc is not None:
            proc.status = status
            self.maybe_done(proc)

    def maybe_done(self, proc: Proc) -> None:
        if proc.status is None or (proc.fds and proc.pty is None):
            return
        if proc.pty is not None and proc.fds:
            self.drain_pty(proc)
        if proc.stdin_fd is not None:
            self.forget(proc.stdin_fd)
            try:
                os.close(proc.stdin_fd)
            except OSError:
                pass
        code = os.waitstatus_to_exitcode(proc.status)
        event = {"op": "exit", "id": proc.id}
        event.update({"code": code} if code >= 0 else {"signal": -code})
        self.send(event)
        self.procs.pop(proc.id, None)

    def drain_pty(self, proc: Proc) -> None:
        """A pty keeps no EOF for us once the child is gone: read what is left, then close."""
        for fd in list(proc.fds):
            while True:
                try:
                    data = os.read(fd, READ)
                except OSError:
                    data = b""
                if not data:
                    break
                self.send(output_event(proc.id, "stdout", data))
            self.forget(fd)
            self.by_fd.pop(fd, None)
            proc.fds.pop(fd, None)
        proc.stdin_fd = None
        if proc.pty is not None:
            os.close(proc.pty)


def identity(user: str) -> tuple[int, int, str, str]:
    """Who a request runs as: uid, gid, home and name (root's as the request named it)."""
    if user in ("root", "0"):
        return 0, 0, "/root", user
    import pwd

    entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_name


def child_env(base: dict[str, str], req: dict[str, Any], home: str, user: str) -> dict[str, str]:
    env = dict(base)
    env.update(HOME=home, USER=user, LOGNAME=user, SHELL="/bin/bash")
    env.update({str(k): str(v) for k, v in (req.get("env") or {}).items()})
    if user != "root":  # another user's own names win over the request's
        env["HOME"], env["USER"], env["LOGNAME"] = home, user, user
    return env


def launch(
    argv: list[str], env: dict[str, str], stdio: Stdio, uid: int, gid: int, user: str
) -> int:
    """The child, through posix_spawn (vfork: no copy of the agent), in its own session,
    with SIGPIPE and SIGXFSZ back to their defaults (Python ignores both, and ignored
    signals survive exec: `yes | head -1` would end with an error instead of the signal).
    An exec that fails raises OSError."""
    if uid != 0:
        return spawn_as(argv, env, stdio, uid, gid, user)
    return os.posix_spawnp(
        argv[0],
        argv,
        env,
        file_actions=stdio.actions(),
        setsid=True,
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
    )


def spawn_as(
    argv: list[str], env: dict[str, str], stdio: Stdio, uid: int, gid: int, user: str
) -> int:
    """launch() as another user, with their groups. posix_spawn cannot change ids, so the
    agent takes the user's for the length of the call (real and effective; root stays the
    saved id, to come back) and the child inherits them: exec makes them all its ids and
    leaves it no capability, as setgroups+setgid+setuid in a child would (/proc's Uid, Gid,
    Groups and Cap* lines are the same as setpriv's). Measured in the guest under TCG,
    starting `true`: this costs what root's posix_spawn does; a forked Python child
    (os.fork) cost ~20 ms more in copy-on-write faults, _posixsubprocess's C child ~5 ms
    more, exec'ing setpriv first 25-40 ms more. (The agent is one thread: nothing else
    runs with the user's ids meanwhile.)"""
    groups = os.getgrouplist(user, gid)
    own = os.getgroups()
    if stdio.tty is not None:  # the user's terminal, as login makes it: the child opens it
        os.fchown(stdio.std[0], uid, -1)
    os.setgroups(groups)
    try:
        os.setresgid(gid, gid, 0)
        try:
            os.setresuid(uid, uid, 0)
            try:
                return os.posix_spawn(
                    program(argv[0], env),
                    argv,
                    env,
                    file_actions=stdio.actions(),
                    setsid=True,
                    setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                )
            finally:  # allowed by the saved id (no capability is needed): cannot fail
                os.setresuid(0, 0, 0)
        finally:
            os.setresgid(0, 0, 0)
    finally:
        os.setgroups(own)


def program(name: str, env: dict[str, str]) -> str:
    """What exec runs for ``name``: searched in the command's PATH (posix_spawnp would
    search the agent's), checked with the ids it runs with (the caller's, at the time)."""
    if "/" in name:
        return name
    denied = False
    for folder in env.get("PATH", os.defpath).split(":"):
        path = os.path.join(folder or ".", name)
        if os.path.isfile(path):
            if os.access(path, os.X_OK):
                return path
            denied = True
    number = errno.EACCES if denied else errno.ENOENT
    raise OSError(number, os.strerror(number), name)


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(rows), int(cols), 0, 0))
