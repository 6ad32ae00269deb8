"""Published ports: specs, the guest's listeners (from /proc/net/tcp text), the request's
`--publish`, the supervisor against QEMU's HMP answers, `sandkit ports` and `ls` on
sandboxes that never boot; and `reset` of a stopped sandbox."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sandkit.sandbox import lifecycle
from sandkit.sandbox.ports import PortError, Published, check_new, find, listeners, parse, saved
from sandkit.sandbox.protocol import ControlError, Identity
from sandkit.sandbox.request import SandboxRequest, build
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, Sandbox, SandboxError, State, Store
from sandkit.sandbox.supervisor.ports import PortHost
from tests.cli.test_kit_cli import SANDKIT


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("8000", Published(8000, 0)),
        ("18000:8000", Published(8000, 18000)),
        ("18000:8000/tcp", Published(8000, 18000)),
        ("10.1.2.3:18000:8000", Published(8000, 18000, "10.1.2.3")),
        ("0.0.0.0:80:8080", Published(8080, 80, "0.0.0.0")),
        ("127.0.0.1:0:22", Published(22, 0)),
        (" 65535:1 ", Published(1, 65535)),
    ],
)
def test_parse(spec: str, want: Published) -> None:
    assert parse(spec) == want


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "not a port to publish"),
        ("x", "not a port to publish"),
        ("0", "not a port number"),
        ("65536", "not a port number"),
        ("70000:80", "not a port number"),
        ("80/udp", "only tcp"),
        ("1.2.3:80:80", "not an IP address"),
        ("[::1]:80:80", "IPv4 host addresses only"),
        ("a:b:c:80", "not a port to publish"),
    ],
)
def test_parse_refuses_with_the_fix(spec: str, message: str) -> None:
    with pytest.raises(PortError, match=message) as info:
        parse(spec)
    assert "GUEST_PORT" in str(info.value) or "tcp" in str(info.value) or "IPv4" in str(info.value)


def test_round_trip_through_a_dict() -> None:
    port = Published(8000, 18000, "10.0.0.1")
    assert Published.from_dict(port.as_dict()) == port
    assert str(port) == "10.0.0.1:18000->8000/tcp"
    assert str(Published(8000, 0)) == "127.0.0.1:?->8000/tcp"


def test_check_new_refuses_a_taken_host_port_or_guest_port() -> None:
    current = [Published(8000, 18000)]
    with pytest.raises(PortError, match=r"host port 127\.0\.0\.1:18000"):
        check_new(current, Published(9000, 18000))
    with pytest.raises(PortError, match="guest port 8000 is already published"):
        check_new(current, Published(8000, 18001))
    check_new(current, Published(9000, 18001))
    check_new(current, Published(9000, 0))  # a host port still to be chosen clashes with none
    check_new(current, Published(8000, 18000, "10.0.0.1"))  # another host address


TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1
   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2
   2: 0F02000A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3
   3: 0100007F:1F41 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4
   4: garbage
"""
TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000001000000:0BB9 00000000000000000000000000000000:0000 0A
   2: 0000000000000000FFFF00000F02000A:0BBA 00000000000000000000000000000000:0000 0A
"""


def test_listeners_on_wildcard_or_loopback_only() -> None:
    # 8000 any, 22 loopback; 80 on 10.0.2.15 only and 8001 (established) are not offered.
    assert listeners(TCP) == {8000, 22}
    assert listeners(TCP, TCP6) == {8000, 22, 3000, 3001}
    assert listeners("") == set()


def test_find_names_a_forward_by_guest_port_or_host_and_guest() -> None:
    current = [Published(8000, 18000), Published(9000, 19000)]
    assert find(current, "8000") == current[0]
    assert find(current, "19000:9000/tcp") == current[1]
    with pytest.raises(PortError, match=r"'18000:9000' is not published \(published: 127"):
        find(current, "18000:9000")
    with pytest.raises(PortError, match="published: none"):
        find([], "80")


def test_saved_skips_damaged_entries() -> None:
    good = Published(8000, 18000).as_dict()
    assert saved([good, {"guest": 1}, {"guest": "x", "host": 1, "host_ip": "a"}]) == [
        Published(8000, 18000)
    ]


def test_a_request_checks_its_ports_and_the_config_keeps_them(tmp_path: Path) -> None:
    config = build(SandboxRequest(workspace=tmp_path, ports=["18000:8000", "10.0.0.1:9000"]))
    assert config.ports == [
        Published(8000, 18000).as_dict(),
        Published(9000, 0, "10.0.0.1").as_dict(),
    ]
    with pytest.raises(SandboxError, match="--publish: guest port 8000 is already published"):
        build(SandboxRequest(workspace=tmp_path, ports=["8000", "18000:8000"]))
    with pytest.raises(SandboxError, match="--publish: '8000/udp': only tcp"):
        build(SandboxRequest(workspace=tmp_path, ports=["8000/udp"]))


# -- the supervisor's side, against QEMU's own answers -----------------------------------------
class MonitorLike:
    """Answers human-monitor-command as QEMU 7.2's HMP does (text, even on success)."""

    def __init__(self) -> None:
        self.rules: set[str] = set()

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        line = str((arguments or {})["command-line"])
        verb, _, rest = line.partition(" ")
        rule = rest.split()[1]
        if verb == "hostfwd_add":
            host = rule.split("-")[0]
            if host in self.rules:
                return f"Could not set up host forwarding rule '{rule}'\r\n"
            self.rules.add(host)
            return ""
        found = rule in self.rules
        self.rules.discard(rule)
        return f"host forwarding rule for {rule} {'removed' if found else 'not found'}\r\n"


async def test_unpublish_reads_qemus_answer(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sandbox = store.new(Config(name="box", agent="shell"))
    sandbox.save_config(Config(name="box", agent="shell"))
    monitor = MonitorLike()
    sup = SimpleNamespace(
        machine=SimpleNamespace(qmp=monitor), sandbox=sandbox, config=sandbox.config()
    )
    host = PortHost(sup)  # type: ignore[arg-type]
    await host.publish("18000:8000")
    assert monitor.rules == {"tcp:127.0.0.1:18000"}
    assert await host.unpublish("8000") == Published(8000, 18000)
    assert monitor.rules == set() and host.published == []
    assert sandbox.config().ports == []
    await host.publish("18000:8000")
    monitor.rules.clear()  # gone behind our back: QEMU says "not found", which is a failure
    with pytest.raises(ControlError, match="not found"):
        await host.unpublish("8000")


# -- the CLI, on sandboxes that never boot -------------------------------------------------------
def sk(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "SANDKIT_POOL_SIZE": "0"}
    return subprocess.run([SANDKIT, *args], capture_output=True, text=True, env=env, timeout=60)


def test_a_stopped_sandbox_records_its_ports_for_the_next_start(tmp_path: Path) -> None:
    assert sk(tmp_path, "create", "shell", "--name", "box").returncode == 0
    done = sk(tmp_path, "ports", "box", "--publish", "18000:8000", "--publish", "9000")
    assert done.returncode == 0, done.stderr
    assert "will publish (when box starts) 127.0.0.1:18000 -> guest port 8000/tcp" in done.stdout
    shown = json.loads(sk(tmp_path, "ports", "box", "--json").stdout)
    assert shown == {
        "ports": [Published(8000, 18000).as_dict(), Published(9000, 0).as_dict()],
        "listening": None,
    }
    taken = sk(tmp_path, "ports", "box", "--publish", "19000:8000")
    assert taken.returncode == 1 and "guest port 8000 is already published" in taken.stderr
    assert sk(tmp_path, "ports", "box", "--unpublish", "9000").returncode == 0
    table = sk(tmp_path, "ports", "box").stdout
    assert "127.0.0.1:18000" in table and "9000" not in table
    listed = sk(tmp_path, "ls").stdout
    assert "127.0.0.1:18000->8000" in listed.splitlines()[1]
    missing = sk(tmp_path, "ports", "box", "--unpublish", "9000")
    assert missing.returncode == 1 and "'9000' is not published" in missing.stderr


def test_ls_names_a_supervisor_of_another_sandkit(tmp_path: Path) -> None:
    for name in ("other", "older", "mine"):
        assert sk(tmp_path, "create", "shell", "--name", name).returncode == 0
    root = tmp_path / "state" / "sandkit" / "sandboxes"
    alive = subprocess.Popen(["sleep", "60"])  # a supervisor pid that is alive
    try:
        here = Identity.local()
        for name, sandkit, prefix in (
            ("other", "0.0.0+other", "/old/venv"),
            ("older", None, None),
            ("mine", here.sandkit, here.prefix),
        ):
            state = State(
                state=SandboxState.RUNNING,
                supervisor_pid=alive.pid,
                sandkit=sandkit,
                protocol=here.protocol if sandkit else None,
                prefix=prefix,
            )
            Sandbox(root, name).save_state(state)
        rows = {r["name"]: r for r in json.loads(sk(tmp_path, "ls", "--json").stdout)}
        assert rows["other"]["other_sandkit"] == "0.0.0+other (other install: /old/venv)"
        assert rows["other"]["prefix"] == "/old/venv"
        assert rows["older"]["other_sandkit"] == "older"
        assert rows["mine"]["other_sandkit"] is None
        lines = {line.split()[0]: line for line in sk(tmp_path, "ls").stdout.splitlines()}
        assert lines["other"].endswith("0.0.0+other (other install: /old/venv)")
        assert lines["older"].endswith("older") and not lines["mine"].endswith("older")
    finally:
        alive.kill()
        alive.wait()


# -- reset ---------------------------------------------------------------------------------------
async def test_reset_replaces_the_guest_disk_and_keeps_the_rest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    config = Config(name="box", agent="shell", ports=[Published(8000, 18000).as_dict()])
    sandbox = store.new(config)
    sandbox.save_config(config)
    sandbox.save_state(State(state=SandboxState.STOPPED))
    kept = {
        "share/work.txt": "w",
        "sync/sync.db": "j",
        "approvals.json": "{}",
        "decisions.jsonl": "",
        "console.log": "c",
    }
    for rel, text in {**kept, "disk.qcow2": "old disk", "golden-state.bin": "s"}.items():
        (sandbox.dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (sandbox.dir / rel).write_text(text)
    assert await lifecycle.reset(sandbox) is False  # it was stopped: it stays stopped
    assert not (sandbox.dir / "disk.qcow2").exists()
    assert not (sandbox.dir / "golden-state.bin").exists()
    assert {rel: (sandbox.dir / rel).read_text() for rel in kept} == kept
    assert sandbox.config() == config and sandbox.state().state is SandboxState.STOPPED
    member = store.new(Config(name="pool-2c512m-abc123", agent="shell"))
    with pytest.raises(SandboxError, match="warm-pool member"):
        await lifecycle.reset(member)


def test_reset_from_the_cli(tmp_path: Path) -> None:
    assert sk(tmp_path, "create", "shell", "--name", "box").returncode == 0
    disk = tmp_path / "state" / "sandkit" / "sandboxes" / "box" / "disk.qcow2"
    disk.write_text("old")
    done = sk(tmp_path, "reset", "box")  # stdin is no terminal: nothing to confirm
    assert done.returncode == 0, done.stderr
    assert done.stdout == "box: a fresh guest disk\n" and not disk.exists()
    assert "no sandbox named 'nope'" in sk(tmp_path, "reset", "-f", "nope").stderr


def test_create_publish_is_recorded_for_every_start(tmp_path: Path) -> None:
    done = sk(tmp_path, "create", "shell", "--name", "box", "-p", "18000:8000", "-p", "9000")
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "state/sandkit/sandboxes/box/config.json").read_text())
    assert config["ports"] == [Published(8000, 18000).as_dict(), Published(9000, 0).as_dict()]
    bad = sk(tmp_path, "create", "shell", "--name", "other", "-p", "8000/udp")
    assert bad.returncode == 1 and "--publish: '8000/udp': only tcp" in bad.stderr
