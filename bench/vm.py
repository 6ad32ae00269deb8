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
  7b. with --tb-sizes 16,32,64 (or only these, --tb-sizes-only): TCG's translation cache
     ($SANDKIT_TB_SIZE_MIB) against memory and speed, per size: an idle pooled member's
     RSS, the warm start (5), exec `true` in the adopted sandbox (median of 20) and that
     sandbox's idle RSS, medians of --runs; a table
  8. with --docker (or only these, --docker-only): the image variant with Docker Engine:
     a sandbox with the docker kit started cold (its golden built first, not timed),
     dockerd ready after first use (the first `docker version` in the guest, which starts
     dockerd through its socket, minus a second one), and `docker run --rm IMAGE true`
     for a FROM-scratch busybox image, timed inside the guest, median of --runs

Prints the figures and ratios; exits 1 when a target is missed (cold start <= 3 s under
TCG, ping <= 2 ms, exec <= 30 ms under TCG, CLI exec <= 100 ms, idle RSS <= 150 MiB,
warm start <= 0.3 s, pooled member <= 120 MiB RSS and ~0 CPU), each beside last
session's figure (PREVIOUS); memory is printed as RSS and PSS.

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

from sandkit.net.tls import CertificateAuthority
from sandkit.paths import config_dir
from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.protocol import ExitEvent
from sandkit.sandbox.store import Sandbox, Store
from sandkit.vm.golden import golden_root
from sandkit.vm.image import DOCKER, ensure_image
from sandkit.vm.qemu import TB_SIZE_MIB

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
            "--cpus",  # the same shape as the pool fills below
            "2",
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


def pss_kib(pid: int) -> int:
    """Proportional set size: pages shared with other processes (the members' mapped
    kernel and libraries, QEMU's binary) count by their share."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def ram_file_mib(pid: int) -> float:
    """The tmpfs held by a q35 VM's guest RAM file (unlinked once restored, kept by QEMU's
    descriptor): the golden's data that the member copied, touched or not, plus what the
    guest touched since. Its untouched part is in no process's RSS or PSS."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if ".ram" in str(fd.readlink()):
                return fd.stat().st_blocks * 512 / (1 << 20)
        except OSError:
            continue
    return 0.0


# The previous run's figures (2026-11-30, `--runs 3` on a quiet machine, the README's),
# printed beside this run's, and the targets.
PREVIOUS = {
    "booted": 3.43,
    "restored": 1.15,
    "warm": 0.12,
    "adoption": 0.03,
    "idle": 206,
    "pooled": 188,
    "cli_exec": 0.064,
}
TARGETS = {"warm": 0.3, "idle": 150, "pooled": 120}


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


DOCKER_NAME = "bench-docker"
# In the guest: a FROM-scratch image of the guest's busybox, then `docker run --rm IMAGE
# true` RUNS times, each printed in seconds (the CLI's own cost left out).
DOCKER_RUNS = r"""
set -e
ctx=$(mktemp -d)
cp "$(command -v busybox)" "$ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n' > "$ctx/Dockerfile"
docker build -q -t bench-busybox "$ctx" >/dev/null
for i in $(seq "$1"); do
  s=$(date +%s.%N); docker run --rm bench-busybox true; e=$(date +%s.%N)
  echo "$s $e"
done
"""


def docker_figures(workspace: Path, env: dict[str, str], runs: int) -> dict[str, object]:
    """The docker variant's figures (8 in the docstring), in seconds."""
    ensure_image(variant=DOCKER)

    def start() -> float:
        sk("rm", "-f", DOCKER_NAME, env=env)
        t = time.perf_counter()
        done = sk("run", "shell", str(workspace), "--name", DOCKER_NAME, "--kit", "docker",
                  "--memory", "1g", "--", "echo", "ready", env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return time.perf_counter() - t

    def guest_seconds(script: str) -> float:
        done = sk("exec", DOCKER_NAME, "--", "sh", "-c",
                  f"s=$(date +%s.%N); {script} >/dev/null; e=$(date +%s.%N); echo $s $e",
                  env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        begin, end = map(float, done.stdout.split())
        return end - begin

    start()  # the docker variant's golden snapshot, built once
    cold = [start() for _ in range(runs)]
    first = guest_seconds("docker version")  # dockerd started by this first connection
    again = guest_seconds("docker version")
    done = sk("exec", DOCKER_NAME, "--", "sh", "-c", DOCKER_RUNS, "sh", str(runs), env=env)
    assert done.returncode == 0, done.stderr
    run_true = [float(e) - float(s) for s, e in (ln.split() for ln in done.stdout.splitlines())]
    sk("rm", "-f", DOCKER_NAME, env=env)
    return {
        "cold": statistics.median(cold),
        "cold_runs": cold,
        "ready": first - again,
        "first": first,
        "again": again,
        "run_true": statistics.median(run_true),
        "run_true_runs": run_true,
    }


def print_docker(fig: dict[str, object], runs: int) -> None:
    def listed(key: str) -> str:
        values = fig[key]
        assert isinstance(values, list)
        return ", ".join(f"{v:.2f}" for v in values)

    print(
        f"docker variant: cold start with the docker kit (median of {runs}): "
        f"{fig['cold']:.2f} s   runs: {listed('cold_runs')}"
    )
    print(
        f"dockerd ready after first use: {fig['ready']:.2f} s   (first `docker version` "
        f"{fig['first']:.2f} s, a second one {fig['again']:.2f} s)"
    )
    print(
        f"`docker run --rm busybox true` in the guest (median of {runs}): "
        f"{fig['run_true']:.2f} s   runs: {listed('run_true_runs')}"
    )


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


def cli_exec_figures(env: dict[str, str], runs: int = 25, name: str = NAME) -> tuple[float, float]:
    """`sandkit exec NAME -- true` end to end (interpreter, imports, connect, exec, exit)
    as the default `agent` user, and the bare interpreter start it cannot go below. The
    same command as root is timed in the same loop (the machine's load is shared alike)
    and printed: the difference is what starting a command as another user costs."""
    cli: list[float] = []
    root: list[float] = []
    bare: list[float] = []
    for _ in range(runs):
        for figures, user in ((cli, []), (root, ["-u", "root"])):
            t = time.perf_counter()
            subprocess.run([SANDKIT, "exec", *user, name, "--", "true"], env=env, check=True)
            figures.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        bare.append(time.perf_counter() - t)
    agent_ms, root_ms = statistics.median(cli) * 1000, statistics.median(root) * 1000
    print(f"CLI exec true (median of {runs}): as agent {agent_ms:.0f} ms, as root {root_ms:.0f} ms")
    return statistics.median(cli), statistics.median(bare)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--docker", action="store_true", help="add the docker figures (8)")
    parser.add_argument("--docker-only", action="store_true", help="only the docker figures")
    parser.add_argument(
        "--tb-sizes", metavar="MIB,...", help="add TCG cache sizes' trade-off (7b), e.g. 16,32,64"
    )
    parser.add_argument("--tb-sizes-only", action="store_true", help="only the tb-size table")
    args = parser.parse_args()
    if args.docker_only:
        return docker_only(args.runs)
    sizes = [int(s) for s in args.tb_sizes.split(",")] if args.tb_sizes else []
    if args.tb_sizes_only:
        print_tb_sizes(tb_size_figures(sizes or [16, 32, 64], args.runs), args.runs)
        return 0
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
        total_pss_mib = sum(pss_kib(p) for p in pids) / 1024
        idle_ram_file = ram_file_mib(state.qemu_pid)
        idle_parts = {
            "QEMU": rss_kib(state.qemu_pid) // 1024,
            "of which guest RAM": rss_kib(state.qemu_pid, "RssShmem") // 1024,
            "TCG cache + heap": rss_kib(state.qemu_pid, "RssAnon") // 1024,
            "supervisor": rss_kib(state.supervisor_pid) // 1024,
        }
        sk("rm", "-f", NAME, env=env)
        warm, adoptions, refills = [], [], []
        for folder in golden_root().glob("*/manifest.json"):  # measured from scratch
            if "1024m" in folder.read_text():
                shutil.rmtree(folder.parent)
        t = time.perf_counter()
        sk("pool", "fill", "--memory", "1g", "--cpus", "2", env=warm_env)
        first_fill = time.perf_counter() - t
        (member,) = [m for m in Store().all() if m.name.startswith("pool-")]
        build_log = (member.dir / "supervisor.log").read_text()
        built = re.search(r"golden snapshot \w+ built in ([\d.]+) s", build_log)
        assert built, "the first fill did not build the golden snapshot"
        golden_build = float(built.group(1))
        sk("pool", "drain", env=warm_env)
        for _ in range(args.runs):
            t = time.perf_counter()
            sk("pool", "fill", "--memory", "1g", "--cpus", "2", env=warm_env)
            refills.append(time.perf_counter() - t)
            time.sleep(1)  # settled, as a member waiting in the pool is
            warm.append(cold_start(workspace, warm_env, "cat"))
            log = (Store().get(NAME).dir / "supervisor.log").read_text()
            adoptions.append(float(log.rsplit(" in ", 1)[1].split()[0]))
            sk("pool", "drain", env=warm_env)
        sk("rm", "-f", NAME, env=env)
        sk("pool", "fill", "--memory", "1g", "--cpus", "2", env=warm_env)
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
        pool_pss_mib = sum(pss_kib(p) for p in mpids) / 1024
        pool_ram_file = ram_file_mib(mstate.qemu_pid)
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
        f"{boot:.2f} s (was {PREVIOUS['booted']:.2f})   runs: "
        + ", ".join(f"{s:.2f}" for s in booted)
    )
    print(
        f"cold start, restored from the golden, to first output (median of {args.runs}): "
        f"{cold:.2f} s (was {PREVIOUS['restored']:.2f})   runs: "
        + ", ".join(f"{s:.2f}" for s in starts)
        + f"   booted/restored {boot / cold:.1f}x"
    )
    print(f"guest channel round trip (median of 50): {ping * 1000:.2f} ms")
    print(
        f"exec `true` in the guest (median of 50): {exec_true * 1000:.1f} ms   "
        f"local spawn of `true`: {local * 1000:.2f} ms   ratio {exec_true / local:.1f}x"
    )
    print(
        f"CLI `sandkit exec NAME -- true` as agent, end to end (median of 25): "
        f"{cli_exec * 1000:.0f} ms (was {PREVIOUS['cli_exec'] * 1000:.0f}, target <= 100)"
        f"   in-process exec: {exec_true * 1000:.1f} ms   interpreter start alone: "
        f"{interpreter * 1000:.0f} ms   CLI/in-process {cli_exec / exec_true:.1f}x"
    )
    print(
        f"attach to a session ({screen_bytes} bytes of screen): `sandkit attach` to the first "
        f"byte on the terminal (median of 10): {cli_attach * 1000:.0f} ms   the supervisor's "
        f"attach round trip (median of 20): {attach_rt * 1000:.1f} ms"
    )
    print(
        f"idle host memory (QEMU + virtiofsd + supervisor, 1 GiB guest): {total_mib:.0f} MiB "
        f"RSS (was {PREVIOUS['idle']}, target <= {TARGETS['idle']}), {total_pss_mib:.0f} MiB PSS"
        "   "
        + ", ".join(f"{k} {v} MiB" for k, v in idle_parts.items())
        + f"   guest RAM file on tmpfs {idle_ram_file:.0f} MiB (its untouched part in no RSS)"
    )
    warm_median = statistics.median(warm)
    print(
        f"warm start, pooled, to a file read over the share (median of {args.runs}): "
        f"{warm_median:.2f} s (was {PREVIOUS['warm']:.2f}, target <= {TARGETS['warm']})   runs: "
        + ", ".join(f"{s:.2f}" for s in warm)
        + f"   cold/warm {cold / warm_median:.1f}x"
    )
    print(
        f"adoption alone (supervisor): median {statistics.median(adoptions):.2f} s "
        f"(was {PREVIOUS['adoption']:.2f})   runs: " + ", ".join(f"{s:.2f}" for s in adoptions)
    )
    print(
        f"idle pooled member: {pool_mib:.0f} MiB RSS (was {PREVIOUS['pooled']}, target <= "
        f"{TARGETS['pooled']}), {pool_pss_mib:.0f} MiB PSS, {pool_cpu:.2f} CPU-s over 10 s   "
        + ", ".join(f"{k} {v} MiB" for k, v in parts.items())
        + f"   guest RAM file on tmpfs {pool_ram_file:.0f} MiB (its untouched part in no RSS)"
    )
    print(
        f"golden snapshot build: {golden_build:.2f} s (first fill, with it: {first_fill:.2f} s)"
        f"   refill of one member (median of {args.runs}): {statistics.median(refills):.2f} s"
        f"   runs: " + ", ".join(f"{s:.2f}" for s in refills)
    )
    if args.docker:
        print_docker(docker_only_figures(args.runs), args.runs)
    if sizes:
        print_tb_sizes(tb_size_figures(sizes, args.runs), args.runs)
    targets = [
        ("cold start <= 3 s (TCG)", cold <= 3.0),
        ("warm start <= 0.3 s (TCG)", warm_median <= TARGETS["warm"]),
        ("pooled member <= 120 MiB RSS", pool_mib <= TARGETS["pooled"]),
        ("pooled member ~0 CPU (< 0.05 s in 10 s)", pool_cpu < 0.05),
        ("guest ping <= 2 ms", ping <= 0.002),
        ("exec true <= 30 ms (TCG)", exec_true <= 0.030),
        ("CLI exec true <= 100 ms (TCG)", cli_exec <= 0.100),
        ("sandkit attach to first byte <= 300 ms", cli_attach <= 0.300),
        ("idle RSS <= 150 MiB", total_mib <= TARGETS["idle"]),
    ]
    for label, met in targets:
        print(f"target {label}: {'met' if met else 'MISSED'}")
    return 0 if all(m for _, m in targets) else 1


def member_pids(sandbox: Sandbox) -> list[int]:
    """QEMU, the supervisor and virtiofsd (with its child) of a sandbox or member."""
    state = sandbox.state()
    assert state.qemu_pid and state.supervisor_pid
    return sorted({state.qemu_pid, state.supervisor_pid, *pids_with(f"source={sandbox.share}\0")})


async def exec_true_median(runs: int = 20) -> float:
    async with await SupervisorClient.connect(Store().get(NAME).control) as client:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            remote = await client.exec(["true"], user="root")
            while not isinstance(await remote.next(), ExitEvent):
                pass
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def tb_size_figures(sizes: list[int], runs: int) -> list[tuple[int, float, float, float, float]]:
    """Per TCG cache size (MiB): pooled member RSS (MiB), warm start (s), exec `true` (s),
    idle RSS of the adopted sandbox (MiB); medians of ``runs``. A state folder of its own."""
    root = Path(tempfile.mkdtemp(prefix="sandkit-bench-tb-"))
    base = {
        **os.environ,
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "SANDKIT_POOL_SIZE": "1",
    }
    os.environ.update({k: base[k] for k in ("XDG_STATE_HOME", "XDG_CONFIG_HOME")})
    CertificateAuthority.load_or_create(config_dir() / "ca")  # as a user's: made once, before
    workspace = root / "ws"
    workspace.mkdir()
    (workspace / "README").write_text("bench\n")
    figures: dict[int, list[tuple[float, float, float, float]]] = {s: [] for s in sizes}
    try:
        for _ in range(runs):  # the sizes in turn, so that each run's load is shared alike
            for size in sizes:
                env = {**base, "SANDKIT_TB_SIZE_MIB": str(size)}
                sk("pool", "fill", "--memory", "1g", "--cpus", "2", env=env)
                time.sleep(3)  # settled, as a member waiting in the pool is
                (member,) = [m for m in Store().all() if m.name.startswith("pool-")]
                pooled = sum(rss_kib(p) for p in member_pids(member)) / 1024
                warm = cold_start(workspace, env, "cat")
                sk("pool", "drain", env=env)  # the refill started by the run, not measured
                exec_true = asyncio.run(exec_true_median())
                time.sleep(5)  # idle
                idle = sum(rss_kib(p) for p in member_pids(Store().get(NAME))) / 1024
                sk("rm", "-f", NAME, env=env)
                figures[size].append((pooled, warm, exec_true, idle))
    finally:
        sk("pool", "drain", env=base)
        time.sleep(5)  # a refill that `run` started may make its member only now
        sk("pool", "drain", env=base)
        sk("rm", "-f", "--all", env=base)
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for size in sizes:
        columns = zip(*figures[size], strict=True)
        pooled, warm, exec_true, idle = (statistics.median(c) for c in columns)
        rows.append((size, pooled, warm, exec_true, idle))
    return rows


def print_tb_sizes(rows: list[tuple[int, float, float, float, float]], runs: int) -> None:
    print(f"TCG translation cache (q35 members; medians of {runs}); default {TB_SIZE_MIB['q35']}:")
    print("  tb-size MiB | pooled RSS MiB | warm start s | exec true ms | idle RSS MiB")
    for size, pooled, warm, exec_true, idle in rows:
        print(
            f"  {size:>11} | {pooled:>14.0f} | {warm:>12.2f} | {exec_true * 1000:>12.1f} "
            f"| {idle:>12.0f}"
        )


def docker_only_figures(runs: int) -> dict[str, object]:
    """The docker figures in a state folder of their own (no pool)."""
    root = Path(tempfile.mkdtemp(prefix="sandkit-bench-docker-"))
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "SANDKIT_POOL_SIZE": "0",
    }
    workspace = root / "ws"
    workspace.mkdir()
    try:
        return docker_figures(workspace, env, runs)
    finally:
        sk("rm", "-f", "--all", env=env)
        shutil.rmtree(root, ignore_errors=True)


def docker_only(runs: int) -> int:
    print_docker(docker_only_figures(runs), runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
