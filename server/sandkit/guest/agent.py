"""sandkit guest agent: PID 1 in the VM. Serves JSON lines on the virtio-serial port
"org.sandkit.agent": exec (with or without a PTY), stdin, resize, signal, ack, ping, read,
write, adopt, poweroff; sends output and exit events. This module is the loop and the
dispatch; procs.py the children, files.py what is answered in-process, dockerd.py the
socket-activated Docker Engine, wire.py the framing. Standard library only; imports are
kept few because every module costs time under TCG. The modules import each other
relatively: in the image they sit in /usr/lib/sandkit/sandkit/guest/ under empty package
stubs, and init.sh imports this one and calls main()."""

from __future__ import annotations

import os
import select
import signal
import sys
import time

from . import dockerd
from .files import adopt, libc, read_file, write_file
from .procs import Procs
from .wire import PORT_NAME, READ, split_lines

MAX_PENDING = 4 << 20  # stop reading children while this much output waits for the host
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "xterm-256color",
}


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


def guest_env(config: dict[str, str]) -> dict[str, str]:
    """Every process's environment: the base and the sandbox's proxy."""
    env = dict(BASE_ENV)
    proxy = config.get("sk.proxy")
    if proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = "http://" + proxy
        env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
    return env


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
        self.poll = select.poll()
        self.watched: dict[int, int] = {}  # child-side fd -> poll mask currently registered
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        if config.get("sk.pool") == "1":  # a warm-pool golden: what adopt() needs, now
            import socket  # noqa: F401

            libc()  # ctypes: ~0.2 s to import under TCG, paid before the pause

        self.env = guest_env(config)
        os.environ.clear()
        os.environ.update(self.env)
        self.procs = Procs(self.env, self.send, self.forget)
        self.port_on = False  # registered with poll; off for a moment after a hang-up
        self.hup_until = 0.0
        self.docker = dockerd.listen()

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
        if not isinstance(req, dict):  # valid JSON, but no request: PID 1 must not die of it
            self.send({"op": "error", "error": "a request is a JSON object"})
            return
        op, rid = req.get("op"), req.get("id")
        try:
            if op == "ping":
                self.send({"op": "pong", "id": rid})
            elif op == "exec":
                self.procs.spawn(rid, req)
            elif op == "ack":
                self.procs.ack(rid, req)
            elif op == "stdin":
                self.procs.stdin(rid, req)
            elif op == "resize":
                self.procs.resize(rid, req)
            elif op == "signal":
                self.procs.kill(rid, req)
            elif op == "poweroff":
                self.poweroff()
            elif op == "adopt":
                self.send({"op": "adopted", "id": rid, "ms": adopt(req)})
            elif op == "read":
                self.send({"op": "file", "id": rid, "data": read_file(str(req["path"]))})
            elif op == "write":
                self.send({"op": "file", "id": rid, "written": write_file(req)})
            else:
                self.send({"op": "error", "id": rid, "error": f"unknown op {op!r}"})
        except Exception as exc:  # one bad request must not take PID 1 down
            self.send({"op": "error", "id": rid, "error": f"{type(exc).__name__}: {exc}"})

    def poweroff(self) -> None:
        self.flush()
        try:
            if self.docker is not None:
                self.docker.stop()
        except OSError:
            pass
        os.sync()
        libc().reboot(0x4321FEDC)  # LINUX_REBOOT_CMD_POWER_OFF

    # -- polling --------------------------------------------------------------------------
    def forget(self, fd: int) -> None:
        if self.watched.pop(fd, None) is not None:
            self.poll.unregister(fd)

    def sync_watches(self, reading_children: bool) -> None:
        """Poll children's output (unless the host is behind, or has not acknowledged the
        child's window) and their stdin while input waits. A paused fd is not polled at
        all: poll reports a hang-up even with no events asked for."""
        desired = {
            fd: select.POLLIN
            for fd, (proc, _) in self.procs.by_fd.items()
            if reading_children and not proc.paused()
        }
        for proc in self.procs.procs.values():
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

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.docker is not None:
                self.docker.reaped(pid)
            self.procs.reaped(pid, status)

    # -- loop -----------------------------------------------------------------------------
    def run(self) -> None:
        if self.pending_ready:  # no host yet: say it as soon as one connects
            self.send({"op": "ready", "version": 1})
        self.poll.register(self.wake_r, select.POLLIN)
        while True:
            self.flush()
            for fd, event in self.poll.poll(self.prepare_poll()):
                if self.docker is not None and fd == self.docker.fd:
                    self.docker.start(self.env)
                elif fd == self.wake_r:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                    self.reap()
                elif fd == self.port:
                    self.port_input(event)
                else:
                    self.procs.event(fd, event)

    def prepare_poll(self) -> float | None:
        """Register what the next poll waits for; its timeout (ms), None for none."""
        now = time.monotonic()
        if not self.port_on and now >= self.hup_until:
            self.poll.register(self.port, select.POLLIN)
            self.port_on = True
        if self.port_on:
            self.poll.modify(self.port, select.POLLIN | (select.POLLOUT if self.out else 0))
        timeout = None if self.port_on else max(0.0, (self.hup_until - now) * 1000)
        if self.docker is not None:
            timeout = self.docker.watch(self.poll, now, timeout)
        reading_children = len(self.out) <= MAX_PENDING  # back-pressure on children's output
        self.sync_watches(reading_children)
        return timeout

    def port_input(self, event: int) -> None:
        if event & select.POLLIN:
            try:
                data = os.read(self.port, READ)
            except BlockingIOError:
                return
            if data:
                lines, self.inbuf = split_lines(self.inbuf, data)
                for line in lines:
                    if line.strip():
                        self.handle(line)
                return
        if event & (select.POLLHUP | select.POLLIN):
            # No host on the other end: wait a little instead of spinning on EOF.
            self.poll.unregister(self.port)
            self.port_on = False
            self.hup_until = time.monotonic() + 0.05


def main() -> int:
    config = cmdline()
    port = find_port()
    if port is None:
        print("sandkit-agent: no virtio port named " + PORT_NAME, file=sys.stderr)
        os.sync()
        return 1
    agent = Agent(port, config)
    # What is loaded now lives as long as PID 1: out of the collector's sight, so that a
    # full collection (tens of ms under TCG, at a moment nobody chooses) stays small.
    import gc

    gc.freeze()
    agent.run()
    return 0
