"""Benchmark: workspace sync.

1. single-file edit latency, host -> share and share -> host (100 edits each, p50/p95),
   with the real watcher; target p95 <= 100 ms
2. first sync of a generated 10,000-file tree beside `cp -a` of the same tree, measured in
   the same run, on tmpfs (a tree under /dev/shm that the bench makes and removes: no disk
   to hide sandkit's own cost) and on disk; each with sandkit's time per phase (scan,
   plan, copy, journal); target <= 2x cp -a on both
3. through a real VM: an edit on the host until `cat` inside the guest sees it (20 edits)

  .venv/bin/python bench/sync.py [--files 10000] [--no-vm] [--first-sync-only]
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
from dataclasses import dataclass, field
from pathlib import Path

from sandkit.sync.engine import SyncEngine

SANDKIT = str(Path(sys.executable).parent / "sandkit")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


async def edit_latency(root: Path, edits: int) -> tuple[list[float], list[float]]:
    host, share = root / "host", root / "share"
    host.mkdir(parents=True)
    share.mkdir()
    for i in range(200):
        (host / f"file{i}.txt").write_text("x" * 1000)
    engine = SyncEngine(host, share, root / "state")
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.get_running_loop().create_task(engine.run(stop, ready))
    await ready.wait()

    async def measure(src: Path, dst: Path, tag: str) -> list[float]:
        out = []
        for i in range(edits):
            name = f"file{i % 200}.txt"
            text = f"{tag} edit {i}"
            start = time.perf_counter()
            (src / name).write_text(text)
            while True:
                try:
                    if (dst / name).read_text() == text:
                        break
                except FileNotFoundError:
                    pass
                await asyncio.sleep(0.001)
            out.append(time.perf_counter() - start)
            await asyncio.sleep(0.02)
        return out

    to_share = await measure(host, share, "host")
    to_host = await measure(share, host, "share")
    stop.set()
    await task
    engine.close()
    return to_share, to_host


def make_tree(root: Path, files: int) -> None:
    per_dir = 100
    for i in range(files):
        d = root / f"dir{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir(parents=True)
        (d / f"file{i:05d}.txt").write_bytes(os.urandom(512 + (i % 7) * 256))


TARGET_RATIO = 2.0  # first sync against `cp -a` of the same tree
PHASES = ("scan", "plan", "copy", "journal")


@dataclass
class FirstSync:
    where: str
    ours: list[float] = field(default_factory=list)
    cp: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.cp)

    def line(self, files: int) -> str:
        ours, cp = statistics.median(self.ours), statistics.median(self.cp)
        split = ", ".join(
            f"{p} {statistics.median(r.get(p, 0.0) for r in self.phases):.3f}" for p in PHASES
        )
        return (
            f"first sync of {files} files on {self.where}: {ours:.3f} s ({split}); "
            f"cp -a {cp:.3f} s; ratio {self.ratio:.2f}x"
        )


def first_sync(root: Path, files: int, where: str, rounds: int = 3) -> FirstSync:
    """Alternate `cp -a` and sandkit's first sync of the same tree (journal on the same
    file system), flushing between runs (a disk's speed drifts: only same-run,
    interleaved figures compare). The flush after each copy is part of its time."""
    tree = root / "tree"
    make_tree(tree, files)
    out = FirstSync(where)
    for n in range(rounds):
        subprocess.run(["sync"], check=False)
        start = time.perf_counter()
        subprocess.run(["cp", "-a", str(tree), str(root / f"cp-{n}")], check=True)
        subprocess.run(["sync"], check=False)
        out.cp.append(time.perf_counter() - start)
        share = root / f"share-{n}"
        share.mkdir(parents=True)
        engine = SyncEngine(tree, share, root / f"state-{n}")
        start = time.perf_counter()
        report = engine.sync()
        subprocess.run(["sync"], check=False)
        out.ours.append(time.perf_counter() - start)
        out.phases.append(report.phases)
        engine.close()
        assert sum(1 for p in share.rglob("*") if p.is_file()) == files
        shutil.rmtree(root / f"cp-{n}")
        shutil.rmtree(share)
    return out


def first_syncs(files: int, disk: Path, tmpfs: Path) -> list[FirstSync]:
    out = []
    for base, where in ((tmpfs, f"tmpfs ({tmpfs})"), (disk, f"disk ({disk})")):
        if not base.is_dir():
            print(f"no {base}: first sync on {where} not measured")
            continue
        root = Path(tempfile.mkdtemp(prefix="sandkit-bench-sync-", dir=base))
        try:
            out.append(first_sync(root, files, where))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return out


def through_vm(root: Path, edits: int) -> list[float]:
    ws = root / "ws"
    ws.mkdir(parents=True)
    (ws / "edit.txt").write_text("start")
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "cfg"),
    }
    name = "bench-sync"
    subprocess.run(
        [SANDKIT, "create", "shell", str(ws), "--name", name],
        env=env,
        check=True,
        capture_output=True,
    )
    out = []
    try:
        script = (
            "import sys,time\nfor line in sys.stdin:\n  want=line.strip()\n"
            "  while open('edit.txt').read()!=want: time.sleep(0.002)\n"
            "  print('seen', flush=True)\n"
        )
        proc = subprocess.Popen(
            [SANDKIT, "exec", "-i", name, "--", "python3", "-c", script],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        for i in range(-1, edits):  # edit -1 warms up (python starting in the guest)
            text = f"edit {i}"
            start = time.perf_counter()
            (ws / "edit.txt").write_text(text)
            proc.stdin.write(text + "\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "seen"
            if i >= 0:
                out.append(time.perf_counter() - start)
        proc.stdin.close()
        proc.wait(30)
    finally:
        subprocess.run([SANDKIT, "rm", "-f", name], env=env, capture_output=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--no-vm", action="store_true")
    parser.add_argument("--first-sync-only", action="store_true", help="only part 2")
    parser.add_argument("--disk", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--tmpfs", type=Path, default=Path("/dev/shm"))
    args = parser.parse_args()
    edits = not args.first_sync_only
    root = Path(tempfile.mkdtemp(prefix="sandkit-bench-sync-"))
    try:
        if edits:
            to_share, to_host = asyncio.run(edit_latency(root / "edits", args.edits))
        firsts = first_syncs(args.files, args.disk, args.tmpfs)
        vm = [] if args.no_vm or not edits else through_vm(root / "vm", 20)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ms = 1000
    targets = []
    if edits:
        for label, values in (("host -> share", to_share), ("share -> host", to_host)):
            print(
                f"edit {label} ({args.edits}): p50 {statistics.median(values) * ms:.1f} ms, "
                f"p95 {p95(values) * ms:.1f} ms"
            )
        targets.append(("edit p95 <= 100 ms (both ways)", max(p95(to_share), p95(to_host)) <= 0.1))
    for first in firsts:
        print(first.line(args.files))
        targets.append(
            (f"first sync <= {TARGET_RATIO:g}x cp -a on {first.where}", first.ratio <= TARGET_RATIO)
        )
    if vm:
        print(
            f"edit on host visible in the VM (20): p50 {statistics.median(vm) * ms:.1f} ms, "
            f"p95 {p95(vm) * ms:.1f} ms"
        )
    for label, met in targets:
        print(f"target {label}: {'met' if met else 'MISSED'}")
    return 0 if all(m for _, m in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
