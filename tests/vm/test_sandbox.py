"""Sandboxes as a user runs them: real QEMU microVMs, the real CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.protocol import ExitEvent, OutputEvent
from sandkit.sandbox.store import Store
from sandkit.vm.image import ensure_image
from tests.cli.test_kit_cli import SANDKIT
from tests.vm.conftest import Box, Env, eventually

pytestmark = pytest.mark.vm


def test_run_prints_the_guest_kernel(box: Box) -> None:
    assert box.run_output.returncode == 0, box.run_output.stderr
    release = box.run_output.stdout.strip()
    assert release == ensure_image().kernel_release
    assert release != os.uname().release


def test_run_exit_status_is_the_commands(env: Env, box: Box) -> None:
    done = env.sk(
        "run", "shell", str(box.workspace), "--name", box.name, "--", "sh", "-c", "exit 3"
    )
    assert done.returncode == 3


def test_exec_streams_codes_user_and_workspace(env: Env, box: Box) -> None:
    done = env.sk(
        "exec",
        box.name,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; id -un; pwd; cat README.md; exit 7",
    )
    assert done.returncode == 7
    assert done.stdout == f"out\nagent\n{box.workspace}\nfrom the host\n"
    assert done.stderr == "err\n"
    root = env.sk(
        "exec",
        "-u",
        "root",
        "-w",
        "/",
        "-e",
        "GREETING=hi",
        box.name,
        "--",
        "sh",
        "-c",
        'echo "$(id -u) $(pwd) $GREETING"',
    )
    assert root.stdout == "0 / hi\n"


def test_exec_stdin_and_missing_command(env: Env, box: Box) -> None:
    assert (
        env.sk("exec", "-i", box.name, "--", "wc", "-c", input="x" * 100000).stdout.strip()
        == "100000"
    )
    missing = env.sk("exec", box.name, "--", "no-such-command")
    assert missing.returncode == 127
    assert "no-such-command" in missing.stderr and "No such file" in missing.stderr


def test_signals_come_back_exactly(env: Env, box: Box) -> None:
    assert env.sk("exec", box.name, "--", "sh", "-c", "kill -TERM $$").returncode == 128 + 15
    assert env.sk("exec", box.name, "--", "sh", "-c", "kill -KILL $$").returncode == 128 + 9
    # a signal sent to the CLI reaches the command in the guest
    proc = subprocess.Popen(
        [
            SANDKIT,
            "exec",
            box.name,
            "--",
            "sh",
            "-c",
            # A loop, not `sleep 60 & wait`: bash without a terminal runs the trap only when
            # `wait` returns, and the test would pass when the sleep ended by itself.
            'trap "echo got-term; exit 5" TERM; echo ready; while :; do sleep 0.1; done',
        ],
        env=env.vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (5, "got-term\n"), err
    # Commands start with the default SIGPIPE (the agent is Python, which ignores it).
    piped = env.sk("exec", box.name, "--", "bash", "-c", "yes | head -1; echo ${PIPESTATUS[0]}")
    assert piped.stdout == "y\n141\n", piped.stderr


async def test_pty_size_resize_and_signal(env: Env, box: Box) -> None:
    async with await SupervisorClient.connect(Store().get(box.name).control) as client:
        remote = await client.exec(
            ["sh", "-c", "stty size; read line; stty size"], pty=True, rows=40, cols=123, stdin=True
        )
        output, status = b"", None

        async def until(text: bytes) -> None:
            nonlocal output, status
            while text not in output and status is None:
                event = await asyncio.wait_for(remote.next(), 60)
                if isinstance(event, OutputEvent):
                    output += base64.b64decode(event.data)
                else:
                    status = event

        await until(b"40 123")
        await remote.resize(50, 132)
        await remote.stdin(b"go\n")
        await until(b"50 132")
        await until(b"no such text: wait for the exit")
        assert status is not None and status.code == 0
        sleeper = await client.exec(["sleep", "60"])
        await sleeper.signal(signal.SIGINT)
        event = await asyncio.wait_for(sleeper.next(), 60)
        assert event == ExitEvent(exec=sleeper.id, signal=signal.SIGINT)


def test_ls(env: Env, box: Box) -> None:
    rows = json.loads(env.sk("ls", "--json").stdout)
    mine = next(r for r in rows if r["name"] == box.name)
    assert (mine["agent"], mine["state"], mine["workspace"]) == (
        "shell",
        "running",
        str(box.workspace),
    )
    table = env.sk("ls").stdout.splitlines()
    header = ["NAME", "AGENT", "STATE", "SYNC", "WORKSPACE", "UPTIME", "PORTS", "SANDKIT"]
    assert table[0].split() == header
    assert mine["sync"] in ("in sync", "syncing")
    assert mine["ports"] == [] and mine["other_sandkit"] is None  # this installation's


def test_root_filesystem_persists_until_rm(env: Env, tmp_path: Path) -> None:
    name = "persist"
    env.sk("create", "shell", str(tmp_path), "--name", name, "--memory", "512m", check=True)
    env.sk("exec", "-u", "root", name, "--", "sh", "-c", "echo kept > /var/tmp/marker", check=True)
    booted = json.loads((env.state / name / "state.json").read_text())["qemu_pid"]
    assert isinstance(booted, int) and _is_qemu(booted)
    env.sk("stop", name, check=True)
    assert _row(env, name)["state"] == "stopped"
    assert not _is_qemu(booted)  # its QEMU is gone
    assert env.sk("exec", name, "--", "cat", "/var/tmp/marker", check=True).stdout == "kept\n"
    assert _row(env, name)["state"] == "running"  # exec started it again: a new QEMU
    assert json.loads((env.state / name / "state.json").read_text())["qemu_pid"] != booted
    env.sk("rm", name, check=True)
    assert not (env.state / name).exists()
    env.sk("create", "shell", str(tmp_path), "--name", name, "--memory", "512m", check=True)
    gone = env.sk("exec", name, "--", "cat", "/var/tmp/marker")
    assert gone.returncode == 1 and "No such file" in gone.stderr
    env.sk("rm", name, check=True)


def _row(env: Env, name: str) -> dict[str, str]:
    rows: list[dict[str, str]] = json.loads(env.sk("ls", "--json", check=True).stdout)
    return next(r for r in rows if r["name"] == name)


def _is_qemu(pid: int) -> bool:
    try:
        return b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _pids_named(needle: str) -> list[int]:
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_killed_qemu_is_crashed_and_rm_cleans_up(env: Env, tmp_path: Path) -> None:
    name = "crashy"
    env.sk("create", "shell", str(tmp_path), "--name", name, "--memory", "512m", check=True)
    env.sk("exec", name, "--", "true", check=True)
    state = json.loads((env.state / name / "state.json").read_text())
    os.kill(state["qemu_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = next(r for r in json.loads(env.sk("ls", "--json").stdout) if r["name"] == name)
        if row["state"] == "crashed":
            break
        time.sleep(0.2)
    assert row["state"] == "crashed"
    assert "QEMU exited unexpectedly" in row["error"] and "guest console" in row["error"]
    sandbox_dir = env.state / name
    env.sk("rm", name, check=True)
    assert not sandbox_dir.exists()
    assert not _pids_named(str(sandbox_dir))  # no QEMU, virtiofsd or supervisor left


def test_guest_reaches_nothing_but_the_proxy(env: Env, box: Box) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    hits: list[str] = []

    def accept() -> None:
        server.settimeout(1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                hits.append("connected")
                conn.close()
            except OSError:
                continue

    stop = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    script = f"""
import socket
targets = ["10.0.2.2", "10.0.2.3", "10.0.2.100", "127.0.0.1", "10.0.2.15", "10.0.2.255",
           "169.254.169.254", "192.168.0.1", "172.17.0.1", "1.1.1.1"]
for host in targets:
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, {port})); print("REACHED", host)
    except OSError as e:
        print("blocked", host)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
query = b"\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01"
for dns in ("10.0.2.3", "10.0.2.2"):
    try:
        u.sendto(query, (dns, 53)); u.recvfrom(512); print("REACHED dns", dns)
    except OSError:
        print("blocked dns", dns)
"""
    try:
        done = env.sk("exec", "-i", box.name, "--", "python3", "-", input=script)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert done.returncode == 0, done.stderr
    assert "REACHED" not in done.stdout, done.stdout
    assert done.stdout.count("blocked") == 12
    assert hits == []


def test_seed_scenario_agent_wipes_its_sandbox(env: Env, box: Box, tmp_path: Path) -> None:
    """The seed scenario: an agent runs `sudo rm -rf --no-preserve-root /*` in its sandbox.
    The host, the other sandbox and the user's workspace are unharmed: the mass deletion is
    held, not propagated; a person who approves it anyway gets every file back with undo."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "precious.txt").write_text("keep me")
    sentinel = tmp_path / "host-sentinel"
    sentinel.write_text("host")
    name = "wrecker"
    for i in range(60):  # a workspace of some size: its deletion is a burst, and is held
        (workspace / f"file{i}.txt").write_text(str(i))
    before = {p.name: p.read_text() for p in workspace.iterdir()}
    env.sk("create", "shell", str(workspace), "--name", name, "--memory", "512m", check=True)
    try:
        wiped = env.sk(
            "exec", name, "--", "sh", "-c", "sudo rm -rf --no-preserve-root /*; echo done",
            timeout=300,
        )  # fmt: skip
        assert "done" in wiped.stdout or wiped.returncode != 0  # the shell may go with /usr
        gone = env.sk("exec", name, "--", "ls", "/usr/bin/ls")
        assert gone.returncode != 0  # the guest really lost its files
        deadline = time.monotonic() + 30  # the guard holds the burst (and undoes its first steps)
        while time.monotonic() < deadline:
            state = json.loads((env.state / name / "state.json").read_text())
            if state["sync"] == "paused" and len(list(workspace.iterdir())) == 61:
                break
            time.sleep(0.2)
        assert sentinel.read_text() == "host"
        log = (env.state / name / "supervisor.log").read_text()
        assert {p.name: p.read_text() for p in workspace.iterdir()} == before, log[-4000:]
        state = json.loads((env.state / name / "state.json").read_text())
        assert state["sync"] == "paused"
        status = env.sk("sync", "status", name, check=True).stdout
        assert "precious.txt" in status
        # The other sandbox did not notice.
        assert (
            env.sk("exec", box.name, "--", "cat", "README.md", check=True).stdout
            == "from the host\n"
        )
        # Approving the deletion deletes on the host, into the trash; undo brings it all back.
        env.sk("sync", "approve", name, check=True)
        assert list(workspace.iterdir()) == []
        restored = env.sk("undo", name, "--last", check=True)
        assert restored.stdout.count("restored ") == 61
        assert {p.name: p.read_text() for p in workspace.iterdir()} == before
    finally:  # a sandbox left paused would ask the next tests' editors about its files
        env.sk("rm", "-f", name, check=True)


def test_image_ls_shows_the_current_image(env: Env, box: Box) -> None:
    rows = json.loads(env.sk("image", "ls", "--json", check=True).stdout)
    current = [r for r in rows if r["current"] and r["variant"] == "base"]  # one per variant
    assert len(current) == 1 and current[0]["valid"]
    assert current[0]["kernel"] == ensure_image().kernel_release
    assert env.sk("image", "build", check=True).stdout.startswith(current[0]["key"])


def test_workspace_edits_sync_both_ways(env: Env, box: Box) -> None:
    (box.workspace / "from-host.txt").write_text("host edit 1")
    seen: list[str] = []  # the last look's stderr, for the failure message

    def in_guest() -> bool:
        look = env.sk("exec", box.name, "--", "cat", "from-host.txt")
        seen[:] = [look.stderr]
        return look.stdout == "host edit 1"

    log = env.state / box.name / "supervisor.log"
    try:
        eventually(in_guest, "the host's edit in the guest")
        env.sk("exec", box.name, "--", "sh", "-c", "echo guest edit > from-guest.txt", check=True)
        target = box.workspace / "from-guest.txt"
        eventually(
            lambda: target.exists() and target.read_text() == "guest edit\n",
            "the guest's edit on the host",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{seen}\n{log.read_text()[-4000:]}") from None
    rows = json.loads(env.sk("ls", "--json").stdout)
    assert next(r for r in rows if r["name"] == box.name)["sync"] in ("in sync", "syncing")


def test_killed_supervisor_is_crashed_and_takes_its_vm_along(env: Env, tmp_path: Path) -> None:
    name = "orphaned"
    env.sk("create", "shell", str(tmp_path), "--name", name, "--memory", "512m", check=True)
    env.sk("exec", name, "--", "true", check=True)
    state = json.loads((env.state / name / "state.json").read_text())
    assert _pids_named(str(env.state / name) + "/")
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    row = next(r for r in json.loads(env.sk("ls", "--json").stdout) if r["name"] == name)
    assert row["state"] == "crashed" and "supervisor is gone" in row["error"]
    # QEMU and virtiofsd die with their supervisor (a death signal), not only at `rm`.
    deadline = time.monotonic() + 10
    while _pids_named(str(env.state / name) + "/") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pids_named(str(env.state / name) + "/")
    env.sk("rm", name, check=True)
    assert not (env.state / name).exists()
