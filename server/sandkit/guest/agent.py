#!/usr/bin/python3 -IS
"""sandkit guest agent: PID 1 in the VM. Serves JSON lines on the virtio-serial port
"org.sandkit.agent": exec (with or without a PTY), stdin, resize, signal, ack, ping,
poweroff; sends output and exit events. Standard library only; imports are kept few
because every module costs time under TCG.

Docker (images that have dockerd): the agent listens on /run/docker.sock from boot and
starts dockerd on the first connection, handing it the socket (systemd's LISTEN_FDS), so a
sandbox that never uses Docker pays nothing for it; dockerd starts containerd itself and
logs to /var/log/dockerd.log.

Flow control: an exec may carry a "window" (bytes). Once that much of its output has been
sent and not acknowledged ({"op": "ack", "id": N, "bytes": n}), its pty/pipes are not read
until the host acknowledges more: the child blocks on a full pipe, nothing piles up."""

from __future__ import annotations

import binascii
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import time

# Not `typing` or `base64`: each import costs tens of milliseconds under TCG.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PORT_NAME = "org.sandkit.agent"
READ = 65536
MAX_PENDING = 4 << 20  # stop reading children while this much output waits for the host
MIN_WINDOW = READ  # a smaller window would stall a child for good
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "xterm-256color",
}
DOCKERD = "/usr/sbin/dockerd"
DOCKER_SOCK = "/run/docker.sock"
DOCKER_LOG = "/var/log/dockerd.log"
# Run as `sh -c`: LISTEN_PID must be dockerd's own pid, which exec keeps. The modules
# dockerd needs (overlay2, the bridge, NAT through iptables-nft) and cgroup v2 first.
DOCKERD_SH = """
modprobe -a overlay br_netfilter bridge veth nf_conntrack nf_nat nf_tables nft_compat \
  nft_chain_nat xt_MASQUERADE xt_addrtype xt_conntrack
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
export LISTEN_PID=$$
exec dockerd -H fd://
"""
DOCKERD_RETRY = 5.0  # a dockerd that ended sooner is not started again before this


def b64encode(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False)


def b64decode(data: str | bytes) -> bytes:
    return binascii.a2b_base64(data)


def cmdline() -> dict[str, str]:
    try:
        words = open("/proc/cmdline").read().split()
    except OSError:
        return {}
    return dict(w.split("=", 1) for w in words if w.startswith("sk.") and "=" in w)


def find_port() -> str | None:
    root = "/sys/class/virtio-ports"
    for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        try:
            if open(f"{root}/{entry}/name").read().strip() == PORT_NAME:
                return f"/dev/{entry}"
        except OSError:
            continue
    return None


def read_file(path: str) -> str | None:
    """A file's bytes (base64), or None if there is none: without starting `cat`."""
    try:
        with open(path, "rb") as f:
            return binascii.b2a_base64(f.read(), newline=False).decode()
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
            f.write(binascii.a2b_base64(str(req.get("data", ""))))
        return True
    tmp = f"{path}.sandkit-tmp"
    with open(tmp, "wb") as f:
        f.write(binascii.a2b_base64(str(req.get("data", ""))))
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


class Agent:
    def __init__(self, port_path: str, config: dict[str, str]) -> None:
        self.port = os.open(port_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        # Ready first: json (and the re module under it) load while the host answers.
        try:
            os.write(self.port, b'{"op":"ready","version":1}\n')
        except BlockingIOError:
            self.pending_ready = True
        else:
            self.pending_ready = False
        import json

        self.json = json
        self.out = bytearray()
        self.inbuf = b""
        self.procs: dict[object, Proc] = {}  # request id -> Proc
        self.by_fd: dict[int, tuple[Proc, str]] = {}  # fd -> (Proc, stream name)
        self.by_pid: dict[int, Proc] = {}
        self.poll = select.poll()
        self.watched: dict[int, int] = {}  # child-side fd -> poll mask currently registered
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.env = dict(BASE_ENV)
        if config.get("sk.pool") == "1":  # a warm-pool golden: what adopt() needs, now
            import ctypes  # noqa: F401  (~0.2 s to import under TCG: paid before the pause)
            import socket  # noqa: F401

        proxy = config.get("sk.proxy")
        if proxy:
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                self.env[name] = "http://" + proxy
            self.env["NO_PROXY"] = self.env["no_proxy"] = "localhost,127.0.0.1,::1"
        os.environ.clear()
        os.environ.update(self.env)
        self.port_on = False  # registered with poll; off for a moment after a hang-up
        self.hup_until = 0.0
        self.docker_fd = docker_socket() if os.path.exists(DOCKERD) else None
        self.dockerd: int | None = None  # its pid while it runs
        self.dockerd_at = 0.0  # when it may be started (again)
        self.docker_polled = False

    # -- sending --------------------------------------------------------------------------
    def send(self, message: dict[str, object]) -> None:
        self.out += self.json.dumps(message, separators=(",", ":")).encode() + b"\n"

    def flush(self) -> None:
        while self.out:
            try:
                n = os.write(self.port, self.out[:READ])
            except BlockingIOError:
                return
            except OSError:
                return
            del self.out[:n]

    # -- requests -------------------------------------------------------------------------
    def handle(self, line: bytes) -> None:
        try:
            req = self.json.loads(line)
        except ValueError:
            self.send({"op": "error", "error": "bad json"})
            return
        op, rid = req.get("op"), req.get("id")
        try:
            if op == "ping":
                self.send({"op": "pong", "id": rid})
            elif op == "exec":
                self.spawn(rid, req)
            elif op == "ack":
                proc = self.procs.get(rid)
                if proc is not None:
                    proc.unacked = max(0, proc.unacked - int(req.get("bytes", 0)))
            elif op == "stdin":
                proc = self.procs.get(rid)
                if proc is not None:
                    proc.pending_in += b64decode(req.get("data", ""))
                    proc.close_stdin = proc.close_stdin or bool(req.get("eof"))
                    self.feed(proc)
            elif op == "resize":
                proc = self.procs.get(rid)
                if proc is not None and proc.pty is not None:
                    set_size(proc.pty, req.get("rows", 24), req.get("cols", 80))
            elif op == "signal":
                proc = self.procs.get(rid)
                if proc is not None and proc.status is None:
                    target = -proc.pid if proc.pty is not None else proc.pid
                    os.kill(target, int(req.get("signal", signal.SIGTERM)))
            elif op == "poweroff":
                self.poweroff()
            elif op == "adopt":
                adopt(req)
                self.send({"op": "adopted", "id": rid})
            elif op == "read":
                self.send({"op": "file", "id": rid, "data": read_file(str(req["path"]))})
            elif op == "write":
                self.send({"op": "file", "id": rid, "written": write_file(req)})
            else:
                self.send({"op": "error", "id": rid, "error": f"unknown op {op!r}"})
        except Exception as exc:  # one bad request must not take PID 1 down
            self.send({"op": "error", "id": rid, "error": f"{type(exc).__name__}: {exc}"})

    def spawn(self, rid: object, req: dict[str, Any]) -> None:
        argv = [str(a) for a in req["argv"]]
        env = dict(self.env)
        user = str(req.get("user") or "root")
        uid = gid = 0
        home = "/root"
        if user not in ("root", "0"):
            import pwd

            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            uid, gid, home, user = entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_name
        env.update(HOME=home, USER=user, LOGNAME=user, SHELL="/bin/bash")
        env.update({str(k): str(v) for k, v in (req.get("env") or {}).items()})
        cwd = req.get("cwd") or home
        pty = bool(req.get("pty"))
        actions, parent_fds, child_fds = [], {}, []
        master = stdin_fd = None
        if pty:
            master, slave = os.openpty()
            set_size(master, req.get("rows", 24), req.get("cols", 80))
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, os.ttyname(slave), os.O_RDWR, 0),
                (os.POSIX_SPAWN_DUP2, 0, 1),
                (os.POSIX_SPAWN_DUP2, 0, 2),
            ]
            child_fds = [slave]
            parent_fds = {master: "stdout"}
            stdin_fd = master
        else:
            if req.get("stdin"):
                r, w = os.pipe2(os.O_CLOEXEC)
                actions.append((os.POSIX_SPAWN_DUP2, r, 0))
                child_fds.append(r)
                stdin_fd = w
            else:
                actions.append((os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0))
            for n, name in ((1, "stdout"), (2, "stderr")):
                r, w = os.pipe2(os.O_CLOEXEC)
                actions.append((os.POSIX_SPAWN_DUP2, w, n))
                child_fds.append(w)
                parent_fds[r] = name
        if user != "root":
            env["HOME"], env["USER"], env["LOGNAME"] = home, user, user
        try:
            os.chdir(cwd)
            # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive exec: put them
            # back, or `yes | head -1` would end with an error instead of the signal.
            if uid == 0:
                pid = os.posix_spawnp(
                    argv[0],
                    argv,
                    env,
                    file_actions=actions,
                    setsid=True,
                    setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                )
            else:
                pid = spawn_as(argv, env, actions, uid, gid, user)
        except OSError as exc:
            for fd in [
                *child_fds,
                *parent_fds,
                *([stdin_fd] if stdin_fd is not None and not pty else []),
            ]:
                os.close(fd)
            message = f"sandkit: cannot run {argv[0]!r}: {exc.strerror}\n".encode()
            self.send(
                {
                    "op": "output",
                    "id": rid,
                    "stream": "stderr",
                    "data": b64encode(message).decode(),
                }
            )
            self.send({"op": "exit", "id": rid, "code": 127 if exc.errno == 2 else 126})
            return
        finally:
            os.chdir("/")
        for fd in child_fds:
            os.close(fd)
        for fd in parent_fds:
            os.set_blocking(fd, False)
        if stdin_fd is not None:
            os.set_blocking(stdin_fd, False)
        proc = Proc(rid, pid, dict(parent_fds), stdin_fd, master)
        window = req.get("window")
        if isinstance(window, int) and window > 0:
            proc.window = max(window, MIN_WINDOW)
        self.procs[rid] = proc
        self.by_pid[pid] = proc
        for fd, name in parent_fds.items():
            self.by_fd[fd] = (proc, name)
        started: dict[str, object] = {"op": "started", "id": rid, "pid": pid}
        if proc.window is not None:
            started["window"] = proc.window  # the host acknowledges output from now on
        self.send(started)

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
            self.send(
                {
                    "op": "output",
                    "id": proc.id,
                    "stream": name,
                    "data": b64encode(data).decode(),
                }
            )
            return
        self.forget(fd)
        del self.by_fd[fd]
        del proc.fds[fd]
        if fd != proc.stdin_fd:
            os.close(fd)
        self.maybe_done(proc)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.dockerd:  # listen again: the next client starts a new one
                self.dockerd = None
            proc = self.by_pid.pop(pid, None)
            if proc is not None:
                proc.status = status
                self.maybe_done(proc)

    def start_dockerd(self) -> None:
        """On a first connection: dockerd, with the listening socket as its fd 3."""
        assert self.docker_fd is not None
        env = dict(self.env, LISTEN_FDS="1", LISTEN_FDNAMES="docker.sock")
        log = os.open(DOCKER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            self.dockerd = os.posix_spawn(
                "/bin/sh",
                ["sh", "-c", DOCKERD_SH],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log, 1),
                    (os.POSIX_SPAWN_DUP2, log, 2),
                    (os.POSIX_SPAWN_DUP2, self.docker_fd, 3),
                ],
                setsid=True,
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        finally:
            os.close(log)
        self.dockerd_at = time.monotonic() + DOCKERD_RETRY

    def stop_dockerd(self, timeout: float = 3.0) -> None:
        """Before power-off: let dockerd stop its containers and close its files."""
        if self.dockerd is None:
            return
        os.kill(self.dockerd, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.waitpid(self.dockerd, os.WNOHANG)[0]:
                return
            time.sleep(0.05)

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
                self.send(
                    {
                        "op": "output",
                        "id": proc.id,
                        "stream": "stdout",
                        "data": b64encode(data).decode(),
                    }
                )
            self.forget(fd)
            self.by_fd.pop(fd, None)
            proc.fds.pop(fd, None)
        proc.stdin_fd = None
        if proc.pty is not None:
            os.close(proc.pty)

    def forget(self, fd: int) -> None:
        if self.watched.pop(fd, None) is not None:
            self.poll.unregister(fd)

    def sync_watches(self, reading_children: bool) -> None:
        """Poll children's output (unless the host is behind, or has not acknowledged the
        child's window) and their stdin while input waits. A paused fd is not polled at
        all: poll reports a hang-up even with no events asked for."""
        desired = {
            fd: select.POLLIN
            for fd, (proc, _) in self.by_fd.items()
            if reading_children and not proc.paused()
        }
        for proc in self.procs.values():
            if proc.stdin_fd is not None and (proc.pending_in or proc.close_stdin):
                desired[proc.stdin_fd] = desired.get(proc.stdin_fd, 0) | select.POLLOUT
        for fd in [fd for fd in self.watched if fd not in desired]:
            self.forget(fd)
        for fd, mask in desired.items():
            if fd not in self.watched:
                self.poll.register(fd, mask)
            elif self.watched[fd] != mask:
                self.poll.modify(fd, mask)
            self.watched[fd] = mask

    def poweroff(self) -> None:
        self.flush()
        try:
            self.stop_dockerd()
        except OSError:
            pass
        os.sync()
        import ctypes

        ctypes.CDLL(None, use_errno=True).reboot(0x4321FEDC)  # LINUX_REBOOT_CMD_POWER_OFF

    # -- loop -----------------------------------------------------------------------------
    def run(self) -> None:
        if self.pending_ready:  # no host yet: say it as soon as one connects
            self.send({"op": "ready", "version": 1})
        self.poll.register(self.wake_r, select.POLLIN)
        while True:
            self.flush()
            now = time.monotonic()
            if not self.port_on and now >= self.hup_until:
                self.poll.register(self.port, select.POLLIN)
                self.port_on = True
            if self.port_on:
                self.poll.modify(self.port, select.POLLIN | (select.POLLOUT if self.out else 0))
            timeout = None if self.port_on else max(0.0, (self.hup_until - now) * 1000)
            if self.docker_fd is not None:
                timeout = self.watch_docker(now, timeout)
            reading_children = len(self.out) <= MAX_PENDING  # back-pressure on children's output
            self.sync_watches(reading_children)
            for fd, event in self.poll.poll(timeout):
                if fd == self.docker_fd:
                    self.start_dockerd()
                elif fd == self.wake_r:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                    self.reap()
                elif fd == self.port:
                    self.port_input(event)
                else:
                    if fd in self.by_fd and event & (
                        select.POLLIN | select.POLLHUP | select.POLLERR
                    ):
                        self.child_output(fd)
                    if event & select.POLLOUT:
                        for proc in list(self.procs.values()):
                            if proc.stdin_fd == fd:
                                self.feed(proc)

    def watch_docker(self, now: float, timeout: float | None) -> float | None:
        """Poll the docker socket while no dockerd runs (and one may start): the poll's
        timeout, shortened to when a dockerd that ended early may start again."""
        assert self.docker_fd is not None
        want = self.dockerd is None and now >= self.dockerd_at
        if want != self.docker_polled:  # kept out of self.watched: sync_watches prunes it
            if want:
                self.poll.register(self.docker_fd, select.POLLIN)
            else:
                self.poll.unregister(self.docker_fd)
            self.docker_polled = want
        if self.dockerd is None and now < self.dockerd_at:
            wait = (self.dockerd_at - now) * 1000
            return wait if timeout is None else min(timeout, wait)
        return timeout

    def port_input(self, event: int) -> None:
        if event & select.POLLIN:
            try:
                data = os.read(self.port, READ)
            except BlockingIOError:
                return
            if data:
                self.inbuf += data
                *lines, self.inbuf = self.inbuf.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.handle(line)
                return
        if event & (select.POLLHUP | select.POLLIN):
            # No host on the other end: wait a little instead of spinning on EOF.
            self.poll.unregister(self.port)
            self.port_on = False
            self.hup_until = time.monotonic() + 0.05


def spawn_as(
    argv: list[str],
    env: dict[str, str],
    actions: list[tuple[Any, ...]],
    uid: int,
    gid: int,
    user: str,
) -> int:
    """posix_spawnp's work (same file actions, own session, default SIGPIPE/SIGXFSZ) as
    another user, with their groups: in a forked child, which then execs the command.
    (posix_spawn cannot change ids; exec'ing setpriv first cost 25-40 ms under TCG.) An
    exec that fails raises OSError here, as posix_spawnp's does: the child reports its
    errno on a close-on-exec pipe that a successful exec closes empty."""
    groups = os.getgrouplist(user, gid)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: nothing here may return
        try:
            os.close(report_r)
            os.setsid()
            for action in actions:
                if action[0] == os.POSIX_SPAWN_OPEN:
                    _, fd, path, flags, mode = action
                    opened = os.open(path, flags, mode)
                    if opened != fd:
                        os.dup2(opened, fd)
                        os.close(opened)
                else:  # POSIX_SPAWN_DUP2: the copy is inherited (dup2 clears CLOEXEC)
                    os.dup2(action[1], action[2])
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(report_w, str(exc.errno or 1).encode())
        finally:
            os._exit(127)
    os.close(report_w)
    try:
        report = b""
        while chunk := os.read(report_r, 16):
            report += chunk
    finally:
        os.close(report_r)
    if report:
        os.waitpid(pid, 0)
        errno = int(report)
        raise OSError(errno, os.strerror(errno), argv[0])
    return pid


def docker_socket() -> int | None:
    """/run/docker.sock, listening (root:docker 0660), or None if it cannot be made."""
    import _socket
    import grp

    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            os.unlink(DOCKER_SOCK)
        except FileNotFoundError:
            pass
        sock.bind(DOCKER_SOCK)
        os.chown(DOCKER_SOCK, 0, grp.getgrnam("docker").gr_gid)
        os.chmod(DOCKER_SOCK, 0o660)
        sock.listen(128)
        # Above the low numbers: a dup2 onto fd 3 must never be a no-op that keeps CLOEXEC.
        raw = sock.detach()
        fd = fcntl.fcntl(raw, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(raw)
    except (OSError, KeyError) as exc:
        print(f"sandkit-agent: no docker socket: {exc}", file=sys.stderr)
        return None
    return fd


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(rows), int(cols), 0, 0))


def main() -> int:
    config = cmdline()
    port = find_port()
    if port is None:
        print("sandkit-agent: no virtio port named " + PORT_NAME, file=sys.stderr)
        os.sync()
        return 1
    Agent(port, config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
