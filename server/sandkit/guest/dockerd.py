"""Docker Engine, socket-activated (images that have dockerd): the agent listens on
/run/docker.sock from boot and starts dockerd on the first connection, handing it the
socket (systemd's LISTEN_FDS), so a sandbox that never uses Docker pays nothing for it;
dockerd starts containerd itself and logs to /var/log/dockerd.log."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import sys
import time

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


class Dockerd:
    """The listening socket and the dockerd it starts (at most one at a time)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pid: int | None = None  # dockerd's while it runs
        self.start_at = 0.0  # when it may be started (again)
        self.polled = False

    def start(self, env: dict[str, str]) -> None:
        """On a first connection: dockerd, with the listening socket as its fd 3."""
        env = dict(env, LISTEN_FDS="1", LISTEN_FDNAMES="docker.sock")
        log = os.open(DOCKER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            self.pid = os.posix_spawn(
                "/bin/sh",
                ["sh", "-c", DOCKERD_SH],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log, 1),
                    (os.POSIX_SPAWN_DUP2, log, 2),
                    (os.POSIX_SPAWN_DUP2, self.fd, 3),
                ],
                setsid=True,
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        finally:
            os.close(log)
        self.start_at = time.monotonic() + DOCKERD_RETRY

    def reaped(self, pid: int) -> None:
        if pid == self.pid:  # listen again: the next client starts a new one
            self.pid = None

    def stop(self, timeout: float = 3.0) -> None:
        """Before power-off: let dockerd stop its containers and close its files."""
        if self.pid is None:
            return
        os.kill(self.pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                return
            time.sleep(0.05)

    def watch(self, poll: select.poll, now: float, timeout: float | None) -> float | None:
        """Poll the socket while no dockerd runs (and one may start): the poll's timeout,
        shortened to when a dockerd that ended early may start again."""
        want = self.pid is None and now >= self.start_at
        if want != self.polled:  # kept out of the agent's watches: it prunes those
            if want:
                poll.register(self.fd, select.POLLIN)
            else:
                poll.unregister(self.fd)
            self.polled = want
        if self.pid is None and now < self.start_at:
            wait = (self.start_at - now) * 1000
            return wait if timeout is None else min(timeout, wait)
        return timeout


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


def listen() -> Dockerd | None:
    """The socket-activated Docker Engine, on an image that has one."""
    if not os.path.exists(DOCKERD):
        return None
    fd = docker_socket()
    return None if fd is None else Dockerd(fd)
