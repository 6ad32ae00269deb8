"""Benchmark: sandboxes (real QEMU microVMs; TCG here).

  1. cold start: `sandkit run shell PATH -- echo ready` until its first output line
     (image cached, a new sandbox each run), median of --runs
  2. guest channel round trip (client -> supervisor -> guest agent -> back), median of 50
  3. exec of `true` through the supervisor, median of 50, beside a local
     subprocess spawn of `true` on the host as the floor
  4. host memory of an idle sandbox with 1 GiB of guest memory: RSS of QEMU +
     virtiofsd + supervisor

Prints the figures and ratios; exits 1 when a DESIGN.md target is missed (cold start <= 3 s
under TCG, ping <= 2 ms, exec <= 30 ms under TCG, idle RSS <= 200 MiB).

    .venv/bin/python bench/vm.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.store import Store
from sandkit.vm.image import ensure_image

SANDKIT = str(Path(sys.executable).parent / "sandkit")
NAME = "bench-vm"


def sk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SANDKIT, *args], env=env, capture_output=True, text=True, timeout=600)


def cold_start(workspace: Path, env: dict[str, str]) -> float:
    sk("rm", "-f", NAME, env=env)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            SANDKIT,
            "run",
            "shell",
            str(workspace),
            "--name",
            NAME,
            "--memory",
            "1g",
            "--",
            "echo",
            "ready",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    _, err = proc.communicate(timeout=60)
    if line.strip() != "ready":
        raise SystemExit(f"run failed: {line!r} {err}")
    return elapsed


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pids_with(needle: str) -> list[int]:
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle.encode() in (proc / "cmdline").read_bytes():
                out.append(int(proc.name))
        except OSError:
            continue
    return out


async def channel_figures() -> tuple[float, float, float]:
    sandbox = Store().get(NAME)
    client = await SupervisorClient.connect(sandbox.control)
    pings, execs = [], []
    for _ in range(50):
        t = time.perf_counter()
        await client.call("guest-ping")
        pings.append(time.perf_counter() - t)
    for _ in range(50):
        t = time.perf_counter()
        remote = await client.exec(["true"], user="root")
        while (await remote.events.get())["event"] != "exit":
            pass
        execs.append(time.perf_counter() - t)
    client.close()
    local = []
    for _ in range(50):
        t = time.perf_counter()
        subprocess.run(["true"], check=True)
        local.append(time.perf_counter() - t)
    return statistics.median(pings), statistics.median(execs), statistics.median(local)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ensure_image()
    root = Path(tempfile.mkdtemp(prefix="sandkit-bench-vm-"))
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
    }
    os.environ.update({k: env[k] for k in ("XDG_STATE_HOME", "XDG_CONFIG_HOME")})
    workspace = root / "ws"
    workspace.mkdir()
    (workspace / "README").write_text("bench\n")
    try:
        starts = [cold_start(workspace, env) for _ in range(args.runs)]
        ping, exec_true, local = asyncio.run(channel_figures())
        time.sleep(5)  # idle
        state = Store().get(NAME).state()
        assert state.qemu_pid and state.supervisor_pid
        pids = [
            state.qemu_pid,
            state.supervisor_pid,
            *pids_with(str(Store().get(NAME).sockets / "share.sock")),
        ]
        rss = {pid: rss_kib(pid) for pid in pids}
        total_mib = sum(rss.values()) / 1024
    finally:
        sk("rm", "-f", "--all", env=env)
        shutil.rmtree(root, ignore_errors=True)
    cold = statistics.median(starts)
    print(
        f"cold start to first output (median of {args.runs}): {cold:.2f} s   runs: "
        + ", ".join(f"{s:.2f}" for s in starts)
    )
    print(f"guest channel round trip (median of 50): {ping * 1000:.2f} ms")
    print(
        f"exec `true` in the guest (median of 50): {exec_true * 1000:.1f} ms   "
        f"local spawn of `true`: {local * 1000:.2f} ms   ratio {exec_true / local:.1f}x"
    )
    print(
        f"idle host memory (QEMU + virtiofsd + supervisor, 1 GiB guest): {total_mib:.0f} MiB   "
        + ", ".join(f"pid {p}: {v // 1024} MiB" for p, v in rss.items())
    )
    targets = [
        ("cold start <= 3 s (TCG)", cold <= 3.0),
        ("guest ping <= 2 ms", ping <= 0.002),
        ("exec true <= 30 ms (TCG)", exec_true <= 0.030),
        ("idle RSS <= 200 MiB", total_mib <= 200),
    ]
    for label, met in targets:
        print(f"target {label}: {'met' if met else 'MISSED'}")
    return 0 if all(m for _, m in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
