"""A test double for vm.machine.Machine: no QEMU. Its guest channel is the real
GuestChannel, over a socketpair to an in-memory guest that speaks the guest agent's wire
protocol (guest/agent.py) without touching the host: files live in a dict, and a few
commands (echo, cat, sleep, false) behave as they would; anything else exits 0."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from pathlib import Path
from typing import Any, ClassVar, cast

from sandkit.tasks import spawn
from sandkit.vm.channel import GuestChannel
from sandkit.vm.machine import Machine, VMError


class FakeGuest:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.argvs: list[list[str]] = []
        self.adopted: dict[str, Any] | None = None
        self.signals: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        self.signalled: list[tuple[int, int]] = []  # (exec id, signal), as sent
        self._stdin: dict[int, asyncio.Queue[tuple[bytes, bool]]] = {}
        self._writer: asyncio.StreamWriter | None = None

    def send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(message).encode() + b"\n")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        try:
            with contextlib.suppress(ConnectionError):
                while line := await reader.readline():
                    self.handle(json.loads(line))
                    await writer.drain()
        finally:
            writer.close()

    def handle(self, req: dict[str, Any]) -> None:
        op, rid = req.get("op"), int(req.get("id") or 0)
        if op == "ping":
            self.send({"op": "pong", "id": rid})
        elif op == "exec":
            self.argvs.append(list(req["argv"]))
            self._stdin[rid] = asyncio.Queue()
            self.send({"op": "started", "id": rid, "pid": 100 + len(self.argvs)})
            spawn(self.run(rid, list(req["argv"])), f"fake-exec-{rid}")
        elif op == "stdin":
            queue = self._stdin.get(rid)
            if queue is not None:
                queue.put_nowait((base64.b64decode(req.get("data", "")), bool(req.get("eof"))))
        elif op == "signal":
            self.signalled.append((rid, int(req["signal"])))
            self.signals.put_nowait((rid, int(req["signal"])))
        elif op == "adopt":
            self.adopted = req
            self.send({"op": "adopted", "id": rid})
        elif op == "read":
            data = self.files.get(req["path"])
            self.send({"op": "file", "id": rid, "data": _b64(data) if data is not None else None})
        elif op == "write":
            old = self.files.get(req["path"], b"") if req.get("append") else b""
            self.files[req["path"]] = old + base64.b64decode(req["data"])
            self.send({"op": "file", "id": rid, "written": True})
        elif op not in ("ack", "resize", "poweroff"):
            self.send({"op": "error", "id": rid, "error": f"unknown op {op!r}"})

    async def run(self, rid: int, argv: list[str]) -> None:
        name = argv[0]
        if name == "echo":
            self.output(rid, (" ".join(argv[1:]) + "\n").encode())
        elif name == "cat" and len(argv) > 1:  # files: the guest's own, else none
            for path in argv[1:]:
                self.output(rid, self.files.get(path, b""))
        elif name == "cat":  # stdin back to stdout until eof
            while True:
                data, eof = await self._stdin[rid].get()
                if data:
                    self.output(rid, data)
                if eof:
                    break
        elif name == "sleep":  # until a signal
            while True:
                target, number = await self.signals.get()
                if target == rid:
                    self.send({"op": "exit", "id": rid, "signal": number})
                    return
        self.send({"op": "exit", "id": rid, "code": 1 if name == "false" else 0})

    def output(self, rid: int, data: bytes) -> None:
        self.send({"op": "output", "id": rid, "stream": "stdout", "data": _b64(data)})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


IMAGE_DISK = 4 << 30  # the guest image's root filesystem, as a new overlay has it


class FakeQMP:
    def __init__(self, disk_size: int | None = IMAGE_DISK) -> None:
        self.commands: list[str] = []
        self.monitor: list[str] = []  # human-monitor-command lines (hostfwd_add, ...)
        self.disk_size = disk_size  # the root drive's virtual size in bytes (None: no drive)

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        self.commands.append(command)
        if command == "query-block":  # the part of QEMU 7.2's answer grow_disk reads
            if self.disk_size is None:
                return []
            image = {"filename": "disk.qcow2", "format": "qcow2", "virtual-size": self.disk_size}
            return [{"device": "root", "locked": False, "inserted": {"image": image}}]
        if command == "block_resize":
            assert arguments is not None and arguments["device"] == "root"
            self.disk_size = int(arguments["size"])
            return {}
        if command == "human-monitor-command":
            line = str((arguments or {})["command-line"])
            self.monitor.append(line)
            if line.startswith("hostfwd_remove"):  # as QEMU 7.2 answers a removal
                return f"host forwarding rule for {line.split()[-1]} removed\r\n"
            return ""  # HMP's answer: empty on success
        return {}


class FakeMachine(Machine):
    """Built by the supervisor through its machine factory, with Machine's arguments."""

    made: ClassVar[list[FakeMachine]] = []
    hold_launch: ClassVar[asyncio.Event | None] = None  # set: launches wait for it
    fail_launch: ClassVar[bool] = False
    # The root disk's size at launch: a new overlay's, or a golden clone's (grown already).
    disk_size: ClassVar[int | None] = IMAGE_DISK

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guest = FakeGuest()
        self.kills = 0
        self.shutdowns = 0
        self.launch_cancelled = False
        self.exited = asyncio.Event()
        self.exit_code = 0
        self.fake_qmp: FakeQMP | None = None
        FakeMachine.made.append(self)

    async def launch(self, timeout: float = 120.0) -> None:
        try:
            if FakeMachine.hold_launch is not None:
                await FakeMachine.hold_launch.wait()
        except asyncio.CancelledError:
            self.launch_cancelled = True
            await self.kill()
            raise
        if FakeMachine.fail_launch:
            raise VMError("the VM did not start: the fake says no")
        host, guest = socket.socketpair()
        guest_reader, guest_writer = await asyncio.open_connection(sock=guest)
        reader, writer = await asyncio.open_connection(sock=host, limit=1 << 22)
        spawn(self.guest.serve(guest_reader, guest_writer), "fake-guest")
        self.channel = GuestChannel(reader, writer)
        spawn(self.channel.pump(), "fake-agent-pump")
        self.fake_qmp = FakeQMP(FakeMachine.disk_size)
        self.qmp = cast(Any, self.fake_qmp)

    @property
    def pid(self) -> int | None:
        return None  # no process a test's lifecycle could signal

    async def attach_share(self) -> None:
        pass

    async def wait(self) -> int:
        await self.exited.wait()
        return self.exit_code

    def die(self, code: int) -> None:
        """The VM exits on its own."""
        self.exit_code = code
        self.exited.set()

    async def shutdown(self, timeout: float = 10.0) -> None:
        self.shutdowns += 1
        await self.kill()

    async def kill(self) -> None:
        self.kills += 1
        if self.channel is not None:
            self.channel.close()
        self.exited.set()


def fake_image(folder: Path) -> Path:
    """An image folder that vm.image.load accepts (the fake machine never reads it)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"vmlinux": 0, "initrd.cpio": 0, "rootfs.ext4": 0}
    for name in files:
        (folder / name).write_bytes(b"")
    manifest = {"key": "fake", "kernel_release": "0", "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
