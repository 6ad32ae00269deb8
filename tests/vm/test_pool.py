"""The warm pool with real VMs: members are restored from a golden snapshot and wait paused,
using no CPU; `run` adopts one (the agent's output comes from the adopted VM, with the
workspace synced in); adopted sandboxes are unique (entropy, machine-id, clock); the pool
refills after an adoption; a corrupt golden is rebuilt, never restored; memory a job frees
goes back to the host."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from pathlib import Path

import pytest

from tests.vm.conftest import Env, eventually

pytestmark = pytest.mark.vm
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_field(pid: int, field: str) -> int:
    """A /proc/PID/status memory figure, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def members(env: Env) -> list[dict[str, object]]:
    out = env.sk("pool", "status", "--json", check=True).stdout
    return list(json.loads(out)["members"])


def wait_pooled(env: Env, count: int, timeout: float = 240) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in members(env) if m["state"] == "pooled"]
        if len(found) >= count:
            return found
        time.sleep(0.5)
    raise AssertionError(f"the pool never held {count} paused member(s): {members(env)}")


def test_pool_adopt_unique_and_refill(env: Env, tmp_path: Path) -> None:
    pooled = Env({**env.vars, "SANDKIT_POOL_SIZE": "2"}, env.state)
    filled = pooled.sk("pool", "fill", "--memory", "512m", "--cpus", "2", timeout=600, check=True)
    assert "2 member(s) started; shape 2c512m" in filled.stdout
    ready = wait_pooled(pooled, 2)
    listed = json.loads(env.sk("ls", "--json", check=True).stdout)
    assert not [s for s in listed if s["name"].startswith("pool-")]  # members are not listed

    # A paused member uses no CPU.
    pid = int(str(ready[0]["qemu_pid"]))
    before = cpu_seconds(pid)
    time.sleep(10)
    assert cpu_seconds(pid) - before < 0.05

    names = []
    for n in (1, 2):
        ws = tmp_path / f"ws{n}"
        ws.mkdir()
        (ws / "hello.txt").write_text(f"from host {n}\n")
        name = f"warm{n}"
        before = time.time()
        done = pooled.sk(
            "run", "shell", str(ws), "--name", name, "--memory", "512m", "--cpus", "2", "--", "sh", "-c",
            "cat hello.txt; hostname; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; "
            "echo; cat /etc/machine-id; date +%s.%N",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        text, host, random, machine_id, clock = done.stdout.splitlines()
        assert text == f"from host {n}" and host == name
        assert before - 1 <= float(clock) <= time.time() + 1  # the host's clock, within 1 s
        names.append((random, machine_id))
        state = json.loads((env.state / name / "state.json").read_text())
        assert str(state["adopted_from"]).startswith("pool-2c512m-")
        # The member rehearsed its adoption before the pause (supervisor/guest.py): that
        # bind is gone, the workspace's is there; ports' route_localnet came with init.
        mounts = pooled.sk("exec", name, "--", "cat", "/proc/mounts", check=True).stdout
        assert "/run/sandkit/rehearsal" not in mounts and f" {ws} " in mounts
        route = "/proc/sys/net/ipv4/conf/all/route_localnet"
        assert pooled.sk("exec", name, "--", "cat", route, check=True).stdout == "1\n"
        steps = (env.state / name / "supervisor.log").read_text()
        assert "guest made unique (names " in steps and " ms, workspace " in steps
        (ws / "from-host.txt").write_text("later\n")  # sync keeps running after adoption
        look = functools.partial(pooled.sk, "exec", name, "--", "cat", "from-host.txt")
        eventually(
            lambda: look().stdout == "later\n",  # noqa: B023 (called in this pass only)
            "the host's edit in the adopted guest",
        )
    assert names[0][0] != names[1][0] and names[0][1] != names[1][1]

    # Each adoption started a background refill: the pool is full again.
    full = wait_pooled(pooled, 2)

    # A member whose supervisor died is cleaned up, and replaced, by the next fill.
    dead = full[0]
    os.kill(int(str(json.loads((env.state / str(dead["name"]) / "state.json").read_text())
                        ["supervisor_pid"])), 9)  # fmt: skip
    with contextlib.suppress(ProcessLookupError):  # it dies with its supervisor
        os.kill(int(str(dead["qemu_pid"])), 9)
    time.sleep(0.5)
    assert {m["name"]: m["state"] for m in members(env)}[dead["name"]] == "crashed"
    pooled.sk("pool", "fill", "--memory", "512m", "--cpus", "2", timeout=600, check=True)
    after = wait_pooled(pooled, 2)
    assert dead["name"] not in {m["name"] for m in members(env)}
    assert len(after) == 2
    pooled.sk("rm", "-f", "warm1", "warm2")
    drained = pooled.sk("pool", "drain", check=True)
    assert "removed" in drained.stdout and members(env) == []


def golden_for(shape_memory: str) -> Path:
    """The golden folder whose command line has this memory size."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sandkit" / "golden"
    found = [
        m.parent
        for m in root.glob("*/manifest.json")
        if f"{shape_memory}m" in json.loads(m.read_text())["inputs"]["argv"]
    ]
    assert len(found) == 1, found
    return found[0]


def flip_a_data_byte(path: Path) -> None:
    mode = path.stat().st_mode
    path.chmod(mode | 0o200)  # the golden's files are read-only: root alone ignores that
    with path.open("r+b") as f:
        offset = os.lseek(f.fileno(), 0, os.SEEK_DATA) + 100
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    path.chmod(mode)


def test_a_corrupt_golden_is_rebuilt_not_restored(env: Env, tmp_path: Path) -> None:
    pooled = Env({**env.vars, "SANDKIT_POOL_SIZE": "1"}, env.state)
    pooled.sk("pool", "fill", "--memory", "384m", "--cpus", "1", timeout=600, check=True)
    folder = golden_for("384")
    built = json.loads((folder / "manifest.json").read_text())["built"]
    pooled.sk("pool", "drain", check=True)

    flip_a_data_byte(folder / "ram")  # a bad disk or a stray write: the guest's memory
    pooled.sk("pool", "fill", "--memory", "384m", "--cpus", "1", timeout=600, check=True)
    (member,) = wait_pooled(pooled, 1)
    log = (env.state / str(member["name"]) / "supervisor.log").read_text()
    assert "ram does not match its digest (corrupt); building it" in log
    assert json.loads((folder / "manifest.json").read_text())["built"] > built
    assert "restored from golden snapshot" in log  # from the rebuilt one

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("after the rebuild\n")
    done = pooled.sk(
        "run", "shell", str(ws), "--name", "rebuilt", "--memory", "384m", "--cpus", "1",
        "--", "cat", "a.txt",
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == "after the rebuild\n", done.stderr
    state = json.loads((env.state / "rebuilt" / "state.json").read_text())
    assert state["adopted_from"] == member["name"]

    # Free-page reporting works on a restored clone: what a job freed goes back to the host.
    qemu_pid = int(state["qemu_pid"])

    def shmem() -> int:
        return rss_field(qemu_pid, "RssShmem")

    job = pooled.sk("exec", "rebuilt", "--", "dd", "if=/dev/zero", "of=/tmp/job", "bs=1M",
                    "count=150")  # fmt: skip
    assert job.returncode == 0, job.stderr
    peak = shmem()
    assert pooled.sk("exec", "rebuilt", "--", "rm", "/tmp/job").returncode == 0
    deadline = time.monotonic() + 60
    while shmem() > peak - (100 << 10) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert shmem() <= peak - (100 << 10), (peak, shmem())
    wait_pooled(pooled, 1)  # the refill that the adoption started
    pooled.sk("rm", "-f", "rebuilt")
    listed = json.loads(pooled.sk("pool", "status", "--json", check=True).stdout)["goldens"]
    assert folder.name in {g["key"] for g in listed if g["shape"] == "1c384m"}
    drained = pooled.sk("pool", "drain", "--golden", check=True).stdout
    assert "1 member(s) removed" in drained and "golden snapshot(s)" in drained
    assert not folder.exists()


def test_a_golden_that_fails_to_restore_is_discarded(env: Env) -> None:
    """A golden whose digests match but whose state QEMU rejects (say, written by a QEMU
    that behaves differently) fails the fill once, is discarded, and the next fill
    rebuilds it: the pool is never stuck on it."""
    from sandkit.vm.golden import FILES, file_digest

    pooled = Env({**env.vars, "SANDKIT_POOL_SIZE": "1"}, env.state)
    pooled.sk("pool", "fill", "--memory", "320m", "--cpus", "1", timeout=600, check=True)
    pooled.sk("pool", "drain", check=True)
    folder = golden_for("320")
    state = folder / "state.bin"
    state.chmod(0o644)
    state.write_bytes(b"QEVM" + os.urandom(4096))  # not a migration stream QEMU can load
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["digests"] = {n: file_digest(folder / n) for n in FILES}
    (folder / "manifest.json").write_text(json.dumps(manifest))

    failed = pooled.sk("pool", "fill", "--memory", "320m", "--cpus", "1", timeout=600)
    assert failed.returncode == 1 and "did not start" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr and not folder.exists()
    assert members(env) == []  # the failed member was removed
    pooled.sk("pool", "fill", "--memory", "320m", "--cpus", "1", timeout=600, check=True)
    assert golden_for("320") == folder and wait_pooled(pooled, 1)
    pooled.sk("pool", "drain", "--golden", check=True)
