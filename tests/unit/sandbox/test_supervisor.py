"""The supervisor without QEMU: its machine is tests/unit/sandbox/fakes.FakeMachine (the
real GuestChannel to an in-memory guest), everything else is real: the state machine,
the proxy, the control socket and its handler table, adoption, approvals, cleanup."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from sandkit.paths import runtime_dir
from sandkit.sandbox import pool as warm_pool
from sandkit.sandbox.protocol import METHODS, PROTOCOL, Identity
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, Sandbox, State, Store
from sandkit.sandbox.supervisor import Supervisor, boot
from sandkit.sandbox.supervisor import ports as ports_module
from sandkit.tasks import spawn
from sandkit.vm import golden
from sandkit.vm.image import Image
from sandkit.vm.qemu import DEFAULT_DISK_MIB

from .fakes import IMAGE_DISK, FakeMachine, fake_image

S = SandboxState
CALLED: set[str] = set()  # every control method this module sends; all must be covered


@pytest.fixture(scope="module")
def config_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config")  # one sandbox CA for the module's sandboxes


@pytest.fixture
def home(tmp_path: Path, config_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SANDKIT_GOLDEN", "0")  # a new sandbox boots (no snapshot to restore)
    monkeypatch.setenv("SANDKIT_POOL_SIZE", "0")  # nothing refills in the background
    FakeMachine.made.clear()
    FakeMachine.hold_launch, FakeMachine.fail_launch = None, False
    FakeMachine.disk_size = IMAGE_DISK
    yield tmp_path
    FakeMachine.hold_launch, FakeMachine.fail_launch = None, False
    FakeMachine.disk_size = IMAGE_DISK


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pool members restore a golden snapshot: here an empty clone (the fake machine
    does not read it), with no probe for KVM."""

    async def clone(
        image: Image, cpus: int, memory_mib: int, accel: str, into: Path, name: str, **_: Any
    ) -> golden.Clone:
        (into / "golden.state").write_bytes(b"")
        return golden.Clone("k", "k", {}, into / "golden.state", into / "ram", into / "disk")

    monkeypatch.setattr(golden, "clone", clone)
    monkeypatch.setattr(boot, "choose_accel", lambda image: "tcg")
    FakeMachine.disk_size = DEFAULT_DISK_MIB << 20  # goldens are grown before they are saved


async def until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.005)


class Box:
    def __init__(self, home: Path, config: Config) -> None:
        store = Store()
        self.sandbox = store.new(config)
        self.sandbox.share.mkdir()  # as lifecycle.create makes it
        self.sandbox.save_config(config)
        self.supervisor = Supervisor(
            self.sandbox, fake_image(home / "image"), machine_factory=FakeMachine
        )
        self.run = spawn(self.supervisor.run(), "supervisor")

    @property
    def machine(self) -> FakeMachine:
        return FakeMachine.made[-1]

    async def ready(self) -> None:
        await until(lambda: self.supervisor.runstate in (S.RUNNING, S.POOLED) or self.run.done())
        assert self.supervisor.runstate in (S.RUNNING, S.POOLED), self.sandbox.state()

    async def ended(self) -> int:
        return await self.run


async def started(home: Path, name: str = "box", **fields: Any) -> Box:
    box = Box(home, Config(name=name, agent="shell", **fields))
    await box.ready()
    return box


class Raw:
    """A client of the wire format itself (JSON lines), not of sandbox/client.py."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[dict[str, Any]] = []
        self.ids = 0

    @classmethod
    async def open(cls, path: Path) -> Raw:
        return cls(*await asyncio.open_unix_connection(str(path)))

    async def line(self, data: bytes) -> dict[str, Any]:
        self.writer.write(data + b"\n")
        await self.writer.drain()
        while True:
            message: dict[str, Any] = json.loads(await self.reader.readline())
            if "event" in message:
                self.events.append(message)
            else:
                return message

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        CALLED.add(method)
        self.ids += 1
        request = {"id": self.ids, "method": method, "params": params or {}}
        reply = await self.line(json.dumps(request).encode())
        assert reply["id"] == self.ids
        return reply

    async def ok(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = await self.call(method, params)
        assert "result" in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    async def code(self, method: str, params: dict[str, Any] | None = None) -> str:
        reply = await self.call(method, params)
        assert "error" in reply, reply
        assert reply["error"]["message"]
        return str(reply["error"]["code"])

    async def event(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while not any(check(e) for e in self.events):
            self.events.append(json.loads(await self.reader.readline()))
        return next(e for e in self.events if check(e))

    def close(self) -> None:
        self.writer.close()


# -- dispatch -----------------------------------------------------------------------------------
async def test_the_read_only_methods_answer_with_their_models(home: Path) -> None:
    box = await started(home)
    client = await Raw.open(box.sandbox.control)
    ping = await client.ok("ping")
    assert ping["protocol"] == PROTOCOL and ping["pid"] == os.getpid()
    assert Identity.model_validate(ping).same_as(Identity.local())
    status = await client.ok("status")
    assert status["state"] == "running" and status["sandkit"] == ping["sandkit"]
    assert await client.ok("guest-ping") == {}
    assert await client.ok("pending") == {"held": []}
    assert await client.ok("watch") == {}
    argv = (await client.ok("agent-argv", {"extra": ["-x"], "interactive": False}))["argv"]
    assert argv and argv[-1] == "-x"
    dump = await client.ok("dump-memory")
    assert dump["path"] == str(box.sandbox.dir / "memory.dump")
    assert box.machine.fake_qmp is not None
    assert "dump-guest-memory" in box.machine.fake_qmp.commands
    assert await client.ok("credentials-changed", {"environ": {"X": "y"}}) == {"services": []}
    # A running sandbox is no pool member; without a workspace there is nothing to sync.
    assert await client.code("adopt", {"name": "x", "config": {}}) == "member-taken"
    for method in ("sync-status", "sync-approve", "sync-reject"):
        assert await client.code(method) == "not-found"
    client.close()
    await stop(box)


async def stop(box: Box) -> None:
    client = await Raw.open(box.sandbox.control)
    assert await client.ok("stop") == {}
    assert await box.ended() == 0
    client.close()
    assert box.sandbox.state().state is S.STOPPED


async def test_exec_streams_output_and_takes_stdin_resize_and_signals(home: Path) -> None:
    box = await started(home)
    client = await Raw.open(box.sandbox.control)
    echo = (await client.ok("exec", {"argv": ["echo", "hi"]}))["exec"]
    exit_ = await client.event(lambda e: e.get("event") == "exit" and e["exec"] == echo)
    assert exit_["code"] == 0
    out = [e for e in client.events if e.get("event") == "output" and e["exec"] == echo]
    assert out and out[0]["data"] == "aGkK"  # "hi\n"
    cat = (await client.ok("exec", {"argv": ["cat"], "stdin": True, "pty": True}))["exec"]
    assert await client.ok("resize", {"exec": cat, "rows": 40, "cols": 100}) == {}
    assert await client.ok("stdin", {"exec": cat, "data": "eWVz", "eof": True}) == {}
    await client.event(lambda e: e.get("event") == "exit" and e["exec"] == cat)
    assert any(e.get("data") == "eWVz" for e in client.events if e.get("exec") == cat)
    sleeper = (await client.ok("exec", {"argv": ["sleep", "60"]}))["exec"]
    assert await client.ok("signal", {"exec": sleeper, "signal": 15}) == {}
    killed = await client.event(lambda e: e.get("event") == "exit" and e["exec"] == sleeper)
    assert killed["signal"] == 15
    assert await client.code("stdin", {"exec": 999, "data": ""}) == "not-found"
    assert box.machine.guest.argvs[-3:] == [["echo", "hi"], ["cat"], ["sleep", "60"]]
    client.close()
    await stop(box)


async def test_a_client_that_leaves_hangs_up_its_execs(home: Path) -> None:
    box = await started(home)
    client = await Raw.open(box.sandbox.control)
    sleeper = (await client.ok("exec", {"argv": ["sleep", "60"]}))["exec"]
    client.close()
    await until(lambda: (sleeper, 1) in box.machine.guest.signalled)  # SIGHUP
    await stop(box)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"not json", "bad-request"),
        (b"[1, 2]", "bad-request"),
        (b'{"id": 1, "method": "exec", "params": {}}', "bad-request"),  # argv missing
        (b'{"id": 1, "method": "exec", "params": {"argv": []}}', "bad-request"),
        (b'{"id": 1, "method": "exec", "params": {"argv": ["x"], "rows": "many"}}', "bad-request"),
        (b'{"id": 1, "method": "ping", "params": {"surprise": 1}}', "bad-request"),
        (b'{"id": 1, "method": "stdin", "params": {"exec": 1, "data": "@@"}}', "bad-request"),
        (
            b'{"id": 1, "method": "approve", "params": {"host": "*.x.test", "remember": true}}',
            "bad-request",
        ),
        (b'{"id": 1, "method": "launch-missiles"}', "unknown-method"),
        (b'{"id": 1}', "unknown-method"),
    ],
)
async def test_bad_requests_get_a_code_and_the_connection_goes_on(
    home: Path, line: bytes, code: str
) -> None:
    box = await started(home)
    client = await Raw.open(box.sandbox.control)
    reply = await client.line(line)
    assert reply["error"]["code"] == code and reply["error"]["message"]
    assert await client.ok("ping")  # the same connection still answers
    client.close()
    await stop(box)


async def test_approvals_are_answered_and_remembered_for_one_host(home: Path) -> None:
    box = await started(home)
    client = await Raw.open(box.sandbox.control)
    once = await client.ok("approve", {"host": "once.test"})
    assert once == {"answered": 0, "remembered": False}
    kept = await client.ok("approve", {"host": "API.example.test:443", "remember": True})
    assert kept == {"answered": 0, "remembered": True}
    assert await client.ok("deny", {"host": "bad.test", "remember": True})
    path = box.sandbox.dir / "approvals.json"
    assert json.loads(path.read_text()) == {"api.example.test:443": "allow", "bad.test": "deny"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert box.supervisor.load_approvals() == json.loads(path.read_text())
    proxy = box.supervisor.proxy
    assert proxy is not None
    assert proxy.s.policy.decide("bad.test", 80).action.value == "deny"
    client.close()
    await stop(box)


async def test_a_sandbox_with_a_workspace_answers_for_its_sync(home: Path) -> None:
    workspace = home / "work"
    workspace.mkdir()
    (workspace / "a.txt").write_text("a")
    box = await started(home, workspace=str(workspace))
    assert (box.sandbox.share / "a.txt").read_text() == "a"
    client = await Raw.open(box.sandbox.control)
    status = await client.ok("sync-status")
    assert status["status"].startswith("in sync") and status["held"] == []
    assert await client.ok("sync-approve") == {"count": 0}
    assert await client.ok("sync-reject") == {"count": 0}
    client.close()
    await stop(box)
    assert box.sandbox.state().sync is not None


async def test_state_json_is_written_from_the_loops_thread_only(home: Path) -> None:
    box = await started(home)
    with pytest.raises(RuntimeError, match="event loop's thread"):
        await asyncio.to_thread(box.supervisor.save, sync="from a thread")
    await stop(box)


# -- states and the guard -------------------------------------------------------------------------
async def test_while_it_boots_only_what_needs_no_vm_answers(home: Path) -> None:
    FakeMachine.hold_launch = asyncio.Event()
    box = Box(home, Config(name="box", agent="shell"))
    await until(lambda: box.sandbox.control.exists() and bool(FakeMachine.made))
    client = await Raw.open(box.sandbox.control)
    assert (await client.ok("status"))["state"] == "booting"
    assert await client.code("exec", {"argv": ["true"]}) == "wrong-state"
    assert await client.code("guest-ping") == "wrong-state"
    assert await client.code("adopt", {"name": "x", "config": {}}) == "member-taken"
    FakeMachine.hold_launch.set()
    await box.ready()
    assert await client.ok("exec", {"argv": ["true"]})
    client.close()
    await stop(box)


async def test_a_stop_during_boot_cancels_it_and_cleans_up_once(home: Path) -> None:
    FakeMachine.hold_launch = asyncio.Event()  # never set: the VM never comes up
    box = Box(home, Config(name="box", agent="shell"))
    await until(lambda: box.sandbox.control.exists() and bool(FakeMachine.made))
    client = await Raw.open(box.sandbox.control)
    assert await client.ok("stop") == {}
    assert await box.ended() == 0
    client.close()
    assert box.machine.launch_cancelled and box.supervisor.cleanups == 1
    state = box.sandbox.state()
    assert state.state is S.STOPPED and state.error is None
    assert not box.sandbox.control.exists() and box.supervisor.proxy is None


Ending = Callable[[Box], Awaitable[None]]


async def _stop_call(box: Box) -> None:
    client = await Raw.open(box.sandbox.control)
    await client.ok("stop")
    client.close()


async def _signal(box: Box) -> None:
    box.supervisor.request_stop()  # what SIGTERM and SIGINT call
    box.supervisor.request_stop()  # twice: one stop


async def _vm_death(box: Box) -> None:
    box.machine.die(137)


@pytest.mark.parametrize(
    ("ending", "final", "error"),
    [
        (_stop_call, S.STOPPED, None),
        (_signal, S.STOPPED, None),
        (_vm_death, S.CRASHED, "QEMU exited unexpectedly (status 137)"),
    ],
)
async def test_every_ending_cleans_up_exactly_once(
    home: Path, ending: Ending, final: SandboxState, error: str | None
) -> None:
    box = await started(home)
    await ending(box)
    assert await box.ended() == (0 if final is S.STOPPED else 1)
    state = box.sandbox.state()
    assert state.state is final and state.qemu_pid is None
    assert (state.error or "").startswith(error or "")
    assert box.supervisor.cleanups == 1 and box.machine.kills >= 1
    assert box.supervisor.proxy is None and not box.supervisor.proxy_socket.exists()
    assert not box.sandbox.control.exists()


async def test_a_failed_boot_is_recorded_and_cleaned_up_once(home: Path) -> None:
    FakeMachine.fail_launch = True
    box = Box(home, Config(name="box", agent="shell"))
    assert await box.ended() == 1
    state = box.sandbox.state()
    assert state.state is S.CRASHED and "the fake says no" in (state.error or "")
    assert box.supervisor.cleanups == 1 and box.supervisor.proxy is None
    assert not box.sandbox.control.exists()


def grew(box: Box) -> bool:
    """Whether the disk was grown: resized over QMP and resize2fs run in the guest."""
    assert box.machine.fake_qmp is not None
    resized = "block_resize" in box.machine.fake_qmp.commands
    resize2fs = any("resize2fs" in " ".join(argv) for argv in box.machine.guest.argvs)
    assert resized == resize2fs
    return resized


async def test_a_booted_sandbox_grows_its_disk_once(home: Path) -> None:
    """The first start grows the new overlay to the config's size; a later start finds
    the size in query-block and does nothing in the guest."""
    box = await started(home, disk_mib=40 << 10)
    assert grew(box) and box.machine.fake_qmp is not None
    assert box.machine.fake_qmp.disk_size == 40 << 30
    box.supervisor.request_stop()
    assert await box.ended() == 0
    FakeMachine.disk_size = 40 << 30  # the overlay keeps its size
    again = Supervisor(box.sandbox, fake_image(home / "image"), machine_factory=FakeMachine)
    box.supervisor, box.run = again, spawn(again.run(), "supervisor")
    await box.ready()
    assert not grew(box) and "query-block" in box.machine.fake_qmp.commands
    box.supervisor.request_stop()
    assert await box.ended() == 0


async def test_a_boot_without_a_root_disk_fails_loudly(home: Path) -> None:
    FakeMachine.disk_size = None  # QEMU names no drive "root"
    box = Box(home, Config(name="box", agent="shell"))
    assert await box.ended() == 1
    state = box.sandbox.state()
    assert state.state is S.CRASHED and "no root disk" in (state.error or "")


# -- the warm pool ----------------------------------------------------------------------------------
MEMBER = "pool-2c1024m-abc123"


async def member(home: Path) -> Box:
    box = await started(home, MEMBER, pool_shape="2c1024m", default_policy="deny-all")
    assert box.machine.fake_qmp is not None
    assert box.machine.fake_qmp.commands[-1] == "stop"  # paused
    return box


def now(box: Box) -> SandboxState:
    return box.supervisor.runstate


def foreign() -> Identity:
    return Identity.local().model_copy(update={"sandkit": "0.0.0-elsewhere"})


async def test_a_member_refuses_an_adopter_of_another_version(home: Path, pool: None) -> None:
    box = await member(home)
    client = await Raw.open(box.sandbox.control)
    wanted = asdict(Config(name="mine", agent="shell"))
    params = {"name": "mine", "config": wanted, "identity": foreign().model_dump()}
    assert await client.code("adopt", params) == "foreign-version"
    assert box.supervisor.runstate is S.POOLED and box.sandbox.dir.name == MEMBER
    params["identity"] = Identity.local().model_dump()
    adopted = await client.ok("adopt", params)
    assert adopted["member"] == MEMBER
    assert now(box) is S.RUNNING and box.supervisor.sandbox.name == "mine"
    state = Sandbox(Store().root, "mine").state()
    assert state.state is S.RUNNING and state.adopted_from == MEMBER
    assert box.machine.guest.adopted is not None
    assert box.machine.guest.adopted["hostname"] == "mine"
    assert await client.code("adopt", params) == "member-taken"  # once only
    client.close()
    box.supervisor.request_stop()
    assert await box.ended() == 0


async def test_a_member_goes_back_to_the_pool_when_the_kits_are_wrong(
    home: Path, pool: None
) -> None:
    box = await member(home)
    client = await Raw.open(box.sandbox.control)
    wanted = asdict(Config(name="mine", agent="no-such-agent"))
    assert await client.code("adopt", {"name": "mine", "config": wanted}) == "failed"
    assert box.supervisor.runstate is S.POOLED and box.sandbox.state().state is S.POOLED
    client.close()
    box.supervisor.request_stop()
    assert await box.ended() == 0


async def test_lifecycle_adopts_a_member_of_its_own_kind(home: Path, pool: None) -> None:
    box = await member(home)
    assert not grew(box)  # a member is a clone of a golden, grown already
    store = Store()
    adopted = await warm_pool.adopt(store, Config(name="mine", agent="shell"))
    assert adopted is not None and adopted.name == "mine"
    assert adopted.state().state is S.RUNNING
    assert not grew(box)
    box.supervisor.request_stop()
    assert await box.ended() == 0


async def test_no_socket_folder_outlives_its_supervisor(home: Path, pool: None) -> None:
    """State folders this deep put their sockets in /tmp/sandkit-UID/DIGEST. A member
    adopted under another name keeps the folder it was made with: both go when the
    supervisor ends, or every sandbox would leave one behind for good."""
    box = await member(home)
    made_with = box.sandbox.sockets
    assert made_with.parent == runtime_dir() and made_with.is_dir()  # the case under test
    adopted = await warm_pool.adopt(Store(), Config(name="mine", agent="shell"))
    assert adopted is not None and adopted.sockets != made_with
    box.supervisor.request_stop()
    assert await box.ended() == 0
    assert not made_with.exists() and not adopted.sockets.exists()


async def test_an_adopted_member_grows_to_a_bigger_disk(home: Path, pool: None) -> None:
    box = await member(home)
    adopted = await warm_pool.adopt(Store(), Config(name="mine", agent="shell", disk_mib=64 << 10))
    assert adopted is not None and adopted.state().state is S.RUNNING
    assert grew(box) and box.machine.fake_qmp is not None
    assert box.machine.fake_qmp.disk_size == 64 << 30
    box.supervisor.request_stop()
    assert await box.ended() == 0


async def test_lifecycle_drains_a_member_of_another_sandkit(home: Path) -> None:
    """The member's supervisor is a stand-in process (it is never asked anything: its
    state.json says it runs another installation's sandkit)."""
    store = Store()
    config = Config(name=MEMBER, agent="shell", pool_shape="2c1024m")
    old = store.new(config)
    old.save_config(config)
    stand_in = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        gone = foreign().model_copy(update={"prefix": "/a/deleted/venv"})
        old.save_state(State(state=S.POOLED, supervisor_pid=stand_in.pid, **gone.model_dump()))
        assert not warm_pool.same_kind(old.state(), Identity.local())
        assert await warm_pool.adopt(store, Config(name="mine", agent="shell")) is None
        assert not old.dir.exists()
        assert stand_in.wait() == -9
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait()


async def test_lifecycle_starts_cold_when_a_member_fails_in_any_way(home: Path) -> None:
    """A member of its own kind by its state.json whose supervisor does not answer (as a
    supervisor whose venv is gone): adoption gives up, the member is drained."""
    store = Store()
    config = Config(name=MEMBER, agent="shell", pool_shape="2c1024m")
    old = store.new(config)
    old.save_config(config)
    stand_in = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        mine = Identity.local().model_dump()
        old.save_state(State(state=S.POOLED, supervisor_pid=stand_in.pid, **mine))
        assert await warm_pool.adopt(store, Config(name="mine", agent="shell")) is None
        assert not old.dir.exists() and not Sandbox(store.root, "mine").exists()
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait()


# -- sessions and ports ---------------------------------------------------------------------------
def session_output(client: Raw, name: str) -> bytes:
    return b"".join(
        base64.b64decode(e["data"])
        for e in client.events
        if e.get("event") == "session-output" and e["session"] == name
    )


async def test_a_session_outlives_its_client_and_replays_its_screen(home: Path) -> None:
    box = await started(home)
    first = await Raw.open(box.sandbox.control)
    started_ = await first.ok("session-start", {"name": "agent", "argv": ["cat"], "rows": 30})
    assert started_["session"]["name"] == "agent" and started_["session"]["running"]
    assert await first.code("session-start", {"name": "agent", "argv": ["cat"]}) == "bad-request"
    await first.ok("session-input", {"session": "agent", "data": "aGVsbG8K"})  # hello
    while session_output(first, "agent") != b"hello\n":
        await first.event(lambda e: e.get("event") == "session-output")
        await asyncio.sleep(0)
    first.close()  # the terminal goes away: the session does not
    second = await Raw.open(box.sandbox.control)
    listed = (await second.ok("sessions"))["sessions"]
    assert [(s["name"], s["running"]) for s in listed] == [("agent", True)]
    attached = await second.ok("session-attach", {"session": "agent", "rows": 50, "cols": 120})
    assert base64.b64decode(attached["screen"]) == b"hello\n"
    await second.ok("session-input", {"session": "agent", "data": "bW9yZQo="})  # more
    await second.event(lambda e: e.get("event") == "session-output")
    assert session_output(second, "agent") == b"more\n"
    assert await second.ok("session-resize", {"session": "agent", "rows": 10, "cols": 20}) == {}
    assert await second.ok("session-detach", {"session": "agent"}) == {}
    assert (await second.ok("sessions"))["sessions"][0]["attached"] == 0
    await second.ok("session-input", {"session": "agent", "data": "", "eof": True})
    await until(lambda: not box.supervisor.sessions.get("agent").running)
    assert (await second.ok("sessions"))["sessions"][0]["exit_status"] == 0
    assert await second.code("session-attach", {"session": "nope"}) == "not-found"
    assert await second.code("session-input", {"session": "agent", "data": ""}) == "wrong-state"
    second.close()
    await stop(box)


async def test_a_detached_session_is_stopped_with_a_hangup(home: Path) -> None:
    box = await started(home)
    client = await Raw.open(box.sandbox.control)
    made = await client.ok("session-start", {"argv": ["sleep", "60"], "attach": False})
    name = made["session"]["name"]
    assert name == "1" and made["screen"] == ""
    assert await client.ok("session-stop", {"session": name}) == {}
    await until(lambda: not box.supervisor.sessions.get(name).running)
    assert (await client.ok("sessions"))["sessions"][0]["exit_status"] == 128 + 1
    # Attaching to an ended session gives its screen and its end at once.
    await client.ok("session-attach", {"session": name})
    ended = await client.event(lambda e: e.get("event") == "session-exit")
    assert ended["session"] == name and ended["signal"] == 1
    client.close()
    await stop(box)


async def test_ports_are_published_over_qmp_and_kept_in_the_config(home: Path) -> None:
    box = await started(home)
    client = await Raw.open(box.sandbox.control)
    assert box.machine.fake_qmp is not None
    monitor = box.machine.fake_qmp.monitor
    result = await client.ok("publish", {"spec": "18000:8000"})
    assert result["ports"] == [
        {"guest": 8000, "host": 18000, "host_ip": "127.0.0.1", "proto": "tcp"}
    ]
    assert monitor[-1] == "hostfwd_add net0 tcp:127.0.0.1:18000-127.0.0.1:8000"
    assert box.sandbox.config().ports == [result["ports"][0]]
    assert await client.code("publish", {"spec": "19000:8000"}) == "bad-request"  # one forward
    assert await client.code("publish", {"spec": "8000/udp"}) == "bad-request"
    chosen = (await client.ok("publish", {"spec": "9000"}))["ports"][1]
    assert chosen["guest"] == 9000 and chosen["host"] > 0
    assert (await client.ok("ports"))["ports"][1] == chosen
    assert (await client.ok("unpublish", {"spec": "8000"}))["ports"] == [chosen]
    assert monitor[-1] == "hostfwd_remove net0 tcp:127.0.0.1:18000"
    assert await client.code("unpublish", {"spec": "8000"}) == "not-found"
    assert box.sandbox.config().ports == [chosen]
    client.close()
    await stop(box)


LISTEN_8000 = (
    "  sl  local_address rem_address   st\n"
    "   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n"
)


async def test_a_new_guest_listener_is_announced_even_after_a_ports_call_saw_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ports_module, "LISTENER_POLL", 0.01)
    box = await started(home)
    client = await Raw.open(box.sandbox.control)
    await client.ok("watch")
    await asyncio.sleep(0.05)  # the watcher's first look: the baseline (nothing listens)
    box.machine.guest.files["/proc/net/tcp"] = LISTEN_8000.encode()
    assert (await client.ok("ports"))["listening"] == [8000]  # a ports call sees it first
    event = await client.event(lambda e: e.get("event") == "port-listening")
    assert event == {"event": "port-listening", "port": 8000}
    client.close()
    await stop(box)


def test_every_control_method_is_exercised_here() -> None:
    """Runs last in this module (pytest keeps the file's order)."""
    assert set(METHODS) <= CALLED, set(METHODS) - CALLED
