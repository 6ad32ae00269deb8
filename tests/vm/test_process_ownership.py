"""QEMU and virtiofsd die with their supervisor. Killed outright, a supervisor runs none of
its own cleanup; the kernel's parent-death signal (vm/launch.py, vm/nsexec.py) must still
take its VM down, or the VM would hold its memory and the sandbox's files with no proxy
and no owner. As root virtiofsd runs directly; as anyone else (scripts/test) in a user
namespace, through nsexec."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.vm.conftest import Env

PROGRAMS = ("qemu-system", "virtiofsd")


def vm_processes(folder: Path) -> dict[int, str]:
    """Live QEMU and virtiofsd processes (virtiofsd's sandboxed child too) whose command
    line names the sandbox's folder (QEMU's disk, virtiofsd's share). Zombies are gone:
    they hold nothing, and whoever inherits them reaps them."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        program = Path(argv[0].decode(errors="replace")).name
        state = stat.rpartition(")")[2].split()[0]
        named = any(str(folder).encode() in arg for arg in argv)
        if named and state != "Z" and program.startswith(PROGRAMS):
            found[int(entry.name)] = program
    return found


def wait_gone(folder: Path, timeout: float) -> dict[int, str]:
    """Poll until no VM process of ``folder`` is left (or ``timeout``); those left."""
    deadline = time.monotonic() + timeout
    left = vm_processes(folder)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = vm_processes(folder)
    return left


def test_qemu_and_virtiofsd_die_with_their_supervisor(env: Env, tmp_path: Path) -> None:
    name = "orphan-check"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "README.md").write_text("owned\n")
    folder = env.state / name
    started = env.sk(
        "run", "shell", str(workspace), "--name", name, "--memory", "512m", "--", "true"
    )
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads((folder / "state.json").read_text())
        supervisor, qemu = int(state["supervisor_pid"]), int(state["qemu_pid"])
        before = vm_processes(folder)
        assert before.get(qemu, "").startswith("qemu-system"), before
        assert any(p == "virtiofsd" for p in before.values()), before

        os.kill(supervisor, signal.SIGKILL)

        left = wait_gone(folder, timeout=60)
        assert not left, f"still running after their supervisor was killed: {left}"
    finally:
        for pid in vm_processes(folder):  # only if the test failed: leave nothing behind
            os.kill(pid, signal.SIGKILL)
        env.sk("rm", "-f", name, timeout=120)
