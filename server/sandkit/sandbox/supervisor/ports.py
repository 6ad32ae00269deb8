"""Published ports: QEMU's user network forwards a host address to a guest port, added
and removed at run time over QMP (``hostfwd_add``). ``restrict=on`` stays: a forward lets
the host connect in; the guest still cannot connect out. The forwards a user asked for
are kept in config.json, so a restart or a reset publishes them again.

The guest's listeners are read from its /proc/net/tcp* through the agent (no program
started) every few seconds; a new one is announced to watching clients, which offer to
publish it."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import TYPE_CHECKING

from sandkit.logs import logger
from sandkit.sandbox import protocol as p
from sandkit.sandbox.ports import (
    LOOPBACK,
    PortError,
    Published,
    check_new,
    find,
    listeners,
    parse,
    saved,
)
from sandkit.sandbox.protocol import ControlError, ErrorCode

if TYPE_CHECKING:
    from sandkit.sandbox.supervisor.process import Supervisor

log = logger("sandkit.supervisor")
NETDEV = "net0"  # vm/qemu.py's user network
LISTENER_POLL = 2.0  # seconds between looks at the guest's listening sockets
# Forwards reach the guest's loopback address, so that a service listening on 127.0.0.1
# only (most dev servers' default) answers as well as one on 0.0.0.0 (both checked in a
# real guest, tests/vm/test_ports.py). libslirp sends to any address it is given; the
# guest's kernel accepts 127.0.0.1 from its network card once route_localnet is on (the
# guest's init sets it; checked at each start, before the forwards).
GUEST_ADDRESS = "127.0.0.1"
ROUTE_LOCALNET = "/proc/sys/net/ipv4/conf/all/route_localnet"


def free_port(host_ip: str) -> int:
    """A port nobody listens on now (QEMU binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host_ip, 0))
        return int(s.getsockname()[1])


def port_info(port: Published) -> p.PortInfo:
    return p.PortInfo(guest=port.guest, host=port.host, host_ip=port.host_ip, proto=port.proto)


class PortHost:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.published: list[Published] = []
        self.listening: set[int] = set()

    def result(self) -> p.PortsResult:
        return p.PortsResult(
            ports=[port_info(x) for x in sorted(self.published)], listening=sorted(self.listening)
        )

    async def _hmp(self, command: str, done: str = "") -> None:
        """HMP answers in text: hostfwd_add says nothing on success, hostfwd_remove says
        "host forwarding rule for ... removed" (or "... not found")."""
        machine = self.sup.machine
        if machine is None or machine.qmp is None:
            raise ControlError(ErrorCode.WRONG_STATE, "the sandbox is not running")
        answer = await machine.qmp.execute("human-monitor-command", {"command-line": command})
        text = answer.strip() if isinstance(answer, str) else ""
        if text and not (done and text.endswith(done)):
            raise ControlError(ErrorCode.FAILED, f"QEMU refused '{command}': {text}")

    async def publish(self, spec: str, save: bool = True) -> Published:
        try:
            wanted = parse(spec)
            check_new(self.published, wanted)
        except PortError as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
        port = wanted if wanted.host else wanted.with_host(free_port(wanted.host_ip))
        try:
            await self._hmp(
                f"hostfwd_add {NETDEV} tcp:{port.host_ip}:{port.host}-{GUEST_ADDRESS}:{port.guest}"
            )
        except ControlError as exc:
            raise ControlError(
                exc.code,
                f"cannot publish {port}: {exc.message} (is {port.host_ip}:{port.host} in use "
                "on this machine? pick another host port)",
            ) from None
        self.published.append(port)
        if save:
            self._save()
        log.info("published %s", port)
        return port

    async def unpublish(self, spec: str) -> Published:
        try:
            port = find(self.published, spec)
        except PortError as exc:
            raise ControlError(ErrorCode.NOT_FOUND, str(exc)) from None
        await self._hmp(f"hostfwd_remove {NETDEV} tcp:{port.host_ip}:{port.host}", " removed")
        self.published.remove(port)
        self._save()
        log.info("unpublished %s", port)
        return port

    def _save(self) -> None:
        """The user's forwards, in config.json (what a restart publishes again)."""
        config = dataclasses.replace(
            self.sup.sandbox.config(), ports=[x.as_dict() for x in sorted(self.published)]
        )
        self.sup.sandbox.save_config(config)
        self.sup.config = config

    async def restore(self, kit_ports: list[int]) -> None:
        """At start: the saved forwards, then each kit port on the same host port (or a
        free one when that is taken), once per guest port."""
        await self._enable_loopback_forwards()
        for port in saved(self.sup.config.ports):
            try:
                await self.publish(f"{port.host_ip}:{port.host}:{port.guest}", save=False)
            except ControlError as exc:
                log.warning("%s not published again: %s", port, exc.message)
        for guest in kit_ports:
            if any(x.guest == guest for x in self.published):
                continue
            host = guest if _free(LOOPBACK, guest) else 0
            try:
                await self.publish(f"{host}:{guest}", save=False)
            except ControlError as exc:
                log.warning("kit port %d not published: %s", guest, exc.message)

    async def _enable_loopback_forwards(self) -> None:
        """The guest's init turns it on; a guest whose disk predates that gets `sysctl`
        (a program started, ~10 ms under TCG, which an adoption's first command would
        wait behind)."""
        from sandkit.sandbox.supervisor.control import channel_of

        channel = channel_of(self.sup)
        if (await channel.read_file(ROUTE_LOCALNET) or b"").strip() == b"1":
            return
        done = await channel.run(["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"])
        if done.exit_status != 0:
            log.warning("route_localnet: %s", done.stderr.decode(errors="replace").strip())

    async def watch_listeners(self) -> None:
        """Announce each guest port that starts listening (to watching clients). Its own
        record of what it saw: a `ports` call that read the new listener first must not
        swallow the announcement."""
        seen: set[int] | None = None  # None: the first look is the baseline, not news
        while True:
            await asyncio.sleep(LISTENER_POLL)
            if not self.sup.sync_watchers:  # nobody to tell: the guest stays idle
                continue
            now = set(await self.refresh())
            for port in sorted(now - seen) if seen is not None else []:
                event = p.PortListeningEvent(port=port).model_dump()
                for queue in self.sup.sync_watchers:
                    queue.put_nowait(event)
            seen = now

    async def refresh(self) -> set[int]:
        """The guest's listening ports now, read without starting a program."""
        from sandkit.sandbox.supervisor.control import channel_of

        channel = channel_of(self.sup)
        tcp = await channel.read_file("/proc/net/tcp") or b""
        tcp6 = await channel.read_file("/proc/net/tcp6") or b""
        self.listening = listeners(tcp.decode(errors="replace"), tcp6.decode(errors="replace"))
        return self.listening


def _free(host_ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host_ip, port))
        except OSError:
            return False
    return True
