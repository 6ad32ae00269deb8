"""Benchmark: sandboxes (real QEMU microVMs; TCG here).

  1. cold start: `sandkit run shell PATH -- echo ready` until its first output line
     (image cached, a new sandbox each run, no pool), median of --runs: booted
     (SANDKIT_GOLDEN=0), and restored from the shape's golden snapshot (the default)
  2. guest channel round trip (client -> supervisor -> guest agent -> back), median of 50
  3. exec of `true` through the supervisor, median of 50, beside a local
     subprocess spawn of `true` on the host as the floor; and the whole CLI round trip,
     `sandkit exec NAME -- true` as a process (median of 20), beside the interpreter's
     own start (`python -c pass`) as its floor
  3b. attach: a session with 2,000 lines on its screen; the time from `sandkit attach`
     (in a pty) to the first byte on the terminal, median of 10, beside the supervisor
     round trip of an attach (connect, attach, the replayed screen), median of 20
  4. host memory of an idle sandbox with 1 GiB of guest memory: RSS of QEMU +
     virtiofsd + supervisor
  5. warm start, side by side with 1: `sandkit run shell PATH -- cat README` adopting a
     paused member of the warm pool (filled before each run, not timed) until the
     file's first line, read over the share; and the adoption alone (supervisor's log)
  6. an idle pooled member: RSS of its processes and its CPU time over 10 s
  7. the warm pool's costs: building the golden snapshot for the shape (it is removed
     first), and one refill (a member cloned from the golden, restored, share hotplugged,
     primed, paused), median of --runs

Prints the figures and ratios; exits 1 when a target is missed (cold start <= 3 s under
TCG, ping <= 2 ms, exec <= 30 ms under TCG, CLI exec <= 100 ms, idle RSS <= 200 MiB,
warm start <= 0.5 s,
pooled member <= 120 MiB and ~0 CPU).

    .venv/bin/python bench/vm.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pty
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.protocol import ExitEvent
from sandkit.sandbox.store import Store
from sandkit.vm.golden import golden_root
from sandkit.vm.image import ensure_image

SANDKIT = str(Path(sys.executable).parent / "sandkit")
NAME = "bench-vm"


def sk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SANDKIT, *args], env=env, capture_output=True, text=True, timeout=600)


def cold_start(workspace: Path, env: dict[str, str], command: str = "echo") -> float:
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
            *(["echo", "ready"] if command == "echo" else ["cat", "README"]),
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
    if line.strip() not in ("ready", "bench"):
        raise SystemExit(f"run failed: {line!r} {err}")
    return elapsed


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    pings, execs = [], []
    async with await SupervisorClient.connect(sandbox.control) as client:
        for _ in range(50):
            t = time.perf_counter()
            await client.guest_ping()
            pings.append(time.perf_counter() - t)
        for _ in range(50):
            t = time.perf_counter()
            remote = await client.exec(["true"], user="root")
            while not isinstance(await remote.next(), ExitEvent):
                pass
            execs.append(time.perf_counter() - t)
    local = []
    for _ in range(50):
        t = time.perf_counter()
        subprocess.run(["true"], check=True)
        local.append(time.perf_counter() - t)
    return statistics.median(pings), statistics.median(execs), statistics.median(local)


BENCH_SESSION = "bench"


async def attach_figure() -> tuple[float, int]:
    """The supervisor's part of attaching: connect, attach, the screen in the reply."""
    sandbox = Store().get(NAME)
    async with await SupervisorClient.connect(sandbox.control) as client:
        await client.start_session(
            ["sh", "-c", "seq 1 2000; sleep 600"], name=BENCH_SESSION, user="root", attach=False
        )
        await asyncio.sleep(2)  # the lines are on its screen
        times, screen = [], 0
        for _ in range(20):
            t = time.perf_counter()
            async with await SupervisorClient.connect(sandbox.control) as other:
                attached = await other.attach(BENCH_SESSION, interactive=False)
                screen = len(attached.screen)
            times.append(time.perf_counter() - t)
    return statistics.median(times), screen


def cli_attach_figure(env: dict[str, str], runs: int = 10) -> float:
    """`sandkit attach NAME SESSION` in a pty until the first byte reaches the terminal."""
    times = []
    for _ in range(runs):
        master, slave = pty.openpty()
        t = time.perf_counter()
        proc = subprocess.Popen(
            [SANDKIT, "attach", NAME, BENCH_SESSION],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            proc.kill()
            raise RuntimeError("sandkit attach showed nothing in 30 s")
        os.read(master, 1)
        times.append(time.perf_counter() - t)
        proc.terminate()
        proc.wait()
        os.close(master)
    return statistics.median(times)


def cli_exec_figures(env: dict[str, str], runs: int = 20) -> tuple[float, float]:
    """`sandkit exec NAME -- true` end to end (interpreter, imports, connect, exec, exit),
    and the bare interpreter start it cannot go below."""
    cli, bare = [], []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([SANDKIT, "exec", NAME, "--", "true"], env=env, check=True)
        cli.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        bare.append(time.perf_counter() - t)
    return statistics.median(cli), statistics.median(bare)


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
        "SANDKIT_POOL_SIZE": "0",
    }
    warm_env = {**env, "SANDKIT_POOL_SIZE": "1"}
    os.environ.update({k: env[k] for k in ("XDG_STATE_HOME", "XDG_CONFIG_HOME")})
    workspace = root / "ws"
    workspace.mkdir()
    (workspace / "README").write_text("bench\n")
    try:
        booted_env = {**env, "SANDKIT_GOLDEN": "0"}
        booted = [cold_start(workspace, booted_env) for _ in range(args.runs)]
        starts = [cold_start(workspace, env) for _ in range(args.runs)]
        ping, exec_true, local = asyncio.run(channel_figures())
        cli_exec, interpreter = cli_exec_figures(env)
        attach_rt, screen_bytes = asyncio.run(attach_figure())
        cli_attach = cli_attach_figure(env)
        sk("sessions", NAME, "--stop", BENCH_SESSION, env=env)
        time.sleep(5)  # idle
        state = Store().get(NAME).state()
        assert state.qemu_pid and state.supervisor_pid
        pids = [
            state.qemu_pid,
            state.supervisor_pid,
            *pids_with(f"source={Store().get(NAME).share}\0"),  # virtiofsd (and its child)
        ]
        rss = {pid: rss_kib(pid) for pid in pids}
        total_mib = sum(rss.values()) / 1024
        sk("rm", "-f", NAME, env=env)
        warm, adoptions, refills = [], [], []
        for folder in golden_root().glob("*/manifest.json"):  # measured from scratch
            if "1024m" in folder.read_text():
                shutil.rmtree(folder.parent)
        t = time.perf_counter()
        sk("pool", "fill", "--memory", "1g", env=warm_env)
        first_fill = time.perf_counter() - t
        (member,) = [m for m in Store().all() if m.name.startswith("pool-")]
        build_log = (member.dir / "supervisor.log").read_text()
        built = re.search(r"golden snapshot \w+ built in ([\d.]+) s", build_log)
        assert built, "the first fill did not build the golden snapshot"
        golden_build = float(built.group(1))
        sk("pool", "drain", env=warm_env)
        for _ in range(args.runs):
            t = time.perf_counter()
            sk("pool", "fill", "--memory", "1g", env=warm_env)
            refills.append(time.perf_counter() - t)
            time.sleep(1)  # settled, as a member waiting in the pool is
            warm.append(cold_start(workspace, warm_env, "cat"))
            log = (Store().get(NAME).dir / "supervisor.log").read_text()
            adoptions.append(float(log.rsplit(" in ", 1)[1].split()[0]))
            sk("pool", "drain", env=warm_env)
        sk("rm", "-f", NAME, env=env)
        sk("pool", "fill", "--memory", "1g", env=warm_env)
        (member,) = [m for m in Store().all() if m.name.startswith("pool-")]
        mstate = member.state()
        assert mstate.qemu_pid and mstate.supervisor_pid
        mpids = sorted(
            {mstate.qemu_pid, mstate.supervisor_pid, *pids_with(f"source={member.share}\0")}
        )
        cpu_before = sum(cpu_seconds(p) for p in mpids)
        time.sleep(10)
        pool_cpu = sum(cpu_seconds(p) for p in mpids) - cpu_before
        pool_mib = sum(rss_kib(p) for p in mpids) / 1024
        parts = {
            "QEMU": rss_kib(mstate.qemu_pid, "VmRSS") // 1024,
            "of which guest RAM": rss_kib(mstate.qemu_pid, "RssShmem") // 1024,
            "TCG cache + heap": rss_kib(mstate.qemu_pid, "RssAnon") // 1024,
            "mapped files": rss_kib(mstate.qemu_pid, "RssFile") // 1024,
            "supervisor": rss_kib(mstate.supervisor_pid) // 1024,
        }
        sk("pool", "drain", env=warm_env)
    finally:
        sk("pool", "drain", env=warm_env)
        sk("rm", "-f", "--all", env=env)
        shutil.rmtree(root, ignore_errors=True)
    cold = statistics.median(starts)
    boot = statistics.median(booted)
    print(
        f"cold start, booted (SANDKIT_GOLDEN=0), to first output (median of {args.runs}): "
        f"{boot:.2f} s   runs: " + ", ".join(f"{s:.2f}" for s in booted)
    )
    print(
        f"cold start, restored from the golden, to first output (median of {args.runs}): "
        f"{cold:.2f} s   runs: "
        + ", ".join(f"{s:.2f}" for s in starts)
        + f"   booted/restored {boot / cold:.1f}x"
    )
    print(f"guest channel round trip (median of 50): {ping * 1000:.2f} ms")
    print(
        f"exec `true` in the guest (median of 50): {exec_true * 1000:.1f} ms   "
        f"local spawn of `true`: {local * 1000:.2f} ms   ratio {exec_true / local:.1f}x"
    )
    print(
        f"CLI `sandkit exec NAME -- true`, end to end (median of 20): {cli_exec * 1000:.0f} ms"
        f"   in-process exec: {exec_true * 1000:.1f} ms   interpreter start alone: "
        f"{interpreter * 1000:.0f} ms   CLI/in-process {cli_exec / exec_true:.1f}x"
    )
    print(
        f"attach to a session ({screen_bytes} bytes of screen): `sandkit attach` to the first "
        f"byte on the terminal (median of 10): {cli_attach * 1000:.0f} ms   the supervisor's "
        f"attach round trip (median of 20): {attach_rt * 1000:.1f} ms"
    )
    print(
        f"idle host memory (QEMU + virtiofsd + supervisor, 1 GiB guest): {total_mib:.0f} MiB   "
        + ", ".join(f"pid {p}: {v // 1024} MiB" for p, v in rss.items())
    )
    warm_median = statistics.median(warm)
    print(
        f"warm start, pooled, to a file read over the share (median of {args.runs}): "
        f"{warm_median:.2f} s   runs: "
        + ", ".join(f"{s:.2f}" for s in warm)
        + f"   cold/warm {cold / warm_median:.1f}x"
    )
    print(
        f"adoption alone (supervisor): median {statistics.median(adoptions):.2f} s   runs: "
        + ", ".join(f"{s:.2f}" for s in adoptions)
    )
    print(
        f"idle pooled member: {pool_mib:.0f} MiB RSS, {pool_cpu:.2f} CPU-s over 10 s   "
        + ", ".join(f"{k} {v} MiB" for k, v in parts.items())
    )
    print(
        f"golden snapshot build: {golden_build:.2f} s (first fill, with it: {first_fill:.2f} s)"
        f"   refill of one member (median of {args.runs}): {statistics.median(refills):.2f} s"
        f"   runs: " + ", ".join(f"{s:.2f}" for s in refills)
    )
    targets = [
        ("cold start <= 3 s (TCG)", cold <= 3.0),
        ("warm start <= 0.5 s (TCG)", warm_median <= 0.5),
        ("pooled member <= 120 MiB", pool_mib <= 120),
        ("pooled member ~0 CPU (< 0.05 s in 10 s)", pool_cpu < 0.05),
        ("guest ping <= 2 ms", ping <= 0.002),
        ("exec true <= 30 ms (TCG)", exec_true <= 0.030),
        ("CLI exec true <= 100 ms (TCG)", cli_exec <= 0.100),
        ("sandkit attach to first byte <= 300 ms", cli_attach <= 0.300),
        ("idle RSS <= 200 MiB", total_mib <= 200),
    ]
    for label, met in targets:
        print(f"target {label}: {'met' if met else 'MISSED'}")
    return 0 if all(m for _, m in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
