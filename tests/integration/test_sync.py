"""The sync engine with its real watcher on two real trees."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from sandkit.sync.engine import SyncEngine
from sandkit.sync.journal import Journal
from sandkit.sync.safefs import SafeTree


@dataclass
class Pair:
    host: Path
    share: Path
    state: Path
    engine: SyncEngine
    events: list[tuple[str, dict[str, object]]]


async def settle(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Waits for ``check``; the bound only stops a test that would wait forever (a busy
    machine delays the watcher thread, never the outcome)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    assert check(), "did not converge in time"


def tree(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] == "node_modules":  # ignored by default
            continue
        if path.is_symlink():
            out[rel] = "-> " + str(path.readlink())
        elif path.is_file():
            out[rel] = path.read_text()
        else:
            out[rel] = "/"
    return out


@pytest_asyncio.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    host, share, state = tmp_path / "host", tmp_path / "share", tmp_path / "state"
    host.mkdir()
    share.mkdir()
    (host / "keep.txt").write_text("keep")
    (host / "src").mkdir()
    (host / "src" / "main.py").write_text("print(1)")
    (host / "node_modules").mkdir()
    (host / "node_modules" / "big.js").write_text("ignored by default")
    events: list[tuple[str, dict[str, object]]] = []
    engine = SyncEngine(host, share, state, delete_limit=20, grace=0.3)
    engine.listeners.append(lambda e, d: events.append((e, d)))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.get_running_loop().create_task(engine.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 30)
    yield Pair(host, share, state, engine, events)
    stop.set()
    await asyncio.wait_for(task, 10)
    engine.close()


async def test_initial_sync_and_ignore_defaults(pair: Pair) -> None:
    assert tree(pair.share) == {"keep.txt": "keep", "src": "/", "src/main.py": "print(1)"}
    assert pair.engine.status == "in sync"


async def test_edits_flow_both_ways(pair: Pair) -> None:
    (pair.host / "src" / "main.py").write_text("print(2)")
    await settle(lambda: (pair.share / "src" / "main.py").read_text() == "print(2)")
    (pair.share / "made-in-guest.txt").write_text("hello")
    await settle(lambda: (pair.host / "made-in-guest.txt").exists())
    (pair.host / "new" / "deep").mkdir(parents=True)
    (pair.host / "new" / "deep" / "f").write_text("f")
    await settle(lambda: (pair.share / "new" / "deep" / "f").exists())
    (pair.host / "src" / "main.py").chmod(0o755)
    await settle(lambda: (pair.share / "src" / "main.py").stat().st_mode & 0o777 == 0o755)
    (pair.host / "keep.txt").rename(pair.host / "renamed.txt")
    await settle(lambda: tree(pair.share) == tree(pair.host))
    await settle(lambda: pair.engine.status == "in sync")


async def test_conflicts_keep_both_versions(pair: Pair) -> None:
    pair.engine.listeners.clear()
    (pair.share / "keep.txt").write_text("guest version")
    (pair.host / "keep.txt").write_text("host version")
    await settle(
        lambda: (
            any("sandbox-conflict" in p.name for p in pair.host.iterdir())
            or (pair.share / "keep.txt").read_text() == (pair.host / "keep.txt").read_text()
        )
    )
    await settle(lambda: tree(pair.share) == tree(pair.host))
    contents = set(tree(pair.host).values())
    # whichever order the watcher saw them in, no version is lost
    assert "host version" in contents
    assert "guest version" in contents or (pair.host / "keep.txt").read_text() == "guest version"


async def test_deletions_from_the_sandbox_go_to_the_trash(pair: Pair) -> None:
    (pair.share / "keep.txt").unlink()
    await settle(lambda: not (pair.host / "keep.txt").exists())
    journal = Journal(pair.state / "sync.db")
    trash = journal.trash()
    journal.close()
    assert trash[-1][2] == "keep.txt" and Path(trash[-1][3]).read_text() == "keep"
    (pair.share / "src" / "main.py").write_text("overwritten in the guest")
    await settle(lambda: (pair.host / "src" / "main.py").read_text() == "overwritten in the guest")
    journal = Journal(pair.state / "sync.db")
    stored = [Path(t[3]).read_text() for t in journal.trash() if t[2] == "src/main.py"]
    journal.close()
    assert stored == ["print(1)"]  # the host's version before the overwrite


async def test_mass_deletion_is_held_until_answered(pair: Pair) -> None:
    for i in range(40):
        (pair.host / f"f{i}.txt").write_text(str(i))
    await settle(lambda: len(list(pair.share.glob("f*.txt"))) == 40)
    for path in pair.share.glob("f*.txt"):
        path.unlink()
    await settle(lambda: pair.engine.status == "paused")
    assert len(list(pair.host.glob("f*.txt"))) == 40  # the host keeps its files
    assert any(e == "deletions-held" for e, _ in pair.events)
    assert await asyncio.to_thread(pair.engine.reject) == 40
    await settle(lambda: len(list(pair.share.glob("f*.txt"))) == 40)
    for path in pair.share.glob("f*.txt"):
        path.unlink()
    await settle(lambda: pair.engine.status == "paused")
    assert await asyncio.to_thread(pair.engine.approve) == 40
    await settle(lambda: not list(pair.host.glob("f*.txt")))
    assert pair.engine.status in ("in sync", "conflicts")


async def test_links_are_copied_as_links_and_never_leave_the_workspace(pair: Pair) -> None:
    (pair.share / "inside").symlink_to("src/main.py")
    (pair.share / "outside").symlink_to("/etc/passwd")
    await settle(lambda: (pair.host / "inside").is_symlink())
    await settle(lambda: any(e == "link-refused" for e, _ in pair.events))
    assert (pair.host / "inside").readlink() == Path("src/main.py")
    assert not os.path.lexists(pair.host / "outside")


async def test_sandkitignore_overrides_defaults(tmp_path: Path) -> None:
    host, share = tmp_path / "h", tmp_path / "s"
    (host / "node_modules").mkdir(parents=True)
    (host / "node_modules" / "a.js").write_text("a")
    (host / "secret.env").write_text("x")
    (host / ".sandkitignore").write_text("!node_modules/\n*.env\n")
    share.mkdir()
    engine = SyncEngine(host, share, tmp_path / "state")
    engine.sync()
    engine.close()
    assert sorted(p.relative_to(share).as_posix() for p in share.rglob("*")) == [
        ".sandkitignore",
        "node_modules",
        "node_modules/a.js",
    ]


KILLER = """
import sys
from pathlib import Path
from sandkit.sync.engine import SyncEngine
SyncEngine(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])).sync()
"""


def test_kill_9_mid_sync_loses_nothing_and_converges(tmp_path: Path) -> None:
    host, share, state = tmp_path / "h", tmp_path / "s", tmp_path / "state"
    share.mkdir()
    for d in range(50):
        (host / f"d{d}").mkdir(parents=True)
        for f in range(60):
            (host / f"d{d}" / f"f{f}").write_text(f"{d}/{f}" * 50)
    before = tree(host)
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(host), str(share), str(state)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(share.rglob("*"))) < 300:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    copied = len(list(share.rglob("*")))
    assert 0 < copied < len(before), "the kill should land mid-sync"
    (share / "d0" / "f0").write_text("edited in the guest after the crash")
    engine = SyncEngine(host, share, state)
    engine.host.clean_temporaries()
    engine.share.clean_temporaries()
    engine.sync()
    engine.close()
    after_host, after_share = tree(host), tree(share)
    assert after_host == after_share  # converged
    journal = Journal(state / "sync.db")
    trashed = {t[2]: Path(t[3]).read_text() for t in journal.trash()}
    journal.close()
    # Nothing lost: every host file is as it was, or its old version is in the trash; the
    # guest's edit is at the path, or kept beside it as a conflict copy.
    for rel, content in before.items():
        assert after_host.get(rel) == content or trashed.get(rel) == content, rel
    assert "edited in the guest after the crash" in after_host.values()


async def test_a_slow_burst_is_caught_and_its_first_victims_restored(pair: Pair) -> None:
    for i in range(30):
        (pair.host / f"g{i}.txt").write_text(str(i))
    await settle(lambda: len(list(pair.share.glob("g*.txt"))) == 30)
    (pair.share / "keep.txt").unlink()  # the first victim, alone: propagated after the grace
    await settle(lambda: not (pair.host / "keep.txt").exists())
    for path in pair.share.glob("g*.txt"):  # then the rest of the burst
        path.unlink()
    await settle(lambda: pair.engine.status == "paused")
    assert (pair.host / "keep.txt").read_text() == "keep"  # brought back
    assert len(list(pair.host.glob("g*.txt"))) == 30
    assert "keep.txt" in pair.engine.pending


def test_a_first_sync_copies_once_and_a_second_pass_reads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New files are copied a folder at a time with their digests taken on the way, cached
    for both sides: the next full pass reads no file again (but one copied in the kernel,
    whose source was never read), and both passes say where their time went."""
    host, share = tmp_path / "host", tmp_path / "share"
    files = {
        f"d{d}/sub/f{i}.txt": f"{d}-{i}".encode() * (i + 1) for d in range(3) for i in range(30)
    }
    files["big.bin"] = os.urandom((1 << 20) + 123)  # copied with copy_file_range
    files["empty"] = b""
    for rel, data in files.items():
        (host / rel).parent.mkdir(parents=True, exist_ok=True)
        (host / rel).write_bytes(data)
    (host / "d0" / "sub" / "f1.txt").chmod(0o664)  # wider than the umask: chmod'ed after
    (host / "d1" / "sub" / "f2.txt").chmod(0o750)
    share.mkdir()
    engine = SyncEngine(host, share, tmp_path / "state")
    first = engine.sync()
    assert first.applied == len(files) + 6  # and the folders
    assert set(first.phases) == {"scan", "plan", "copy", "journal"}
    for rel, data in files.items():
        assert (share / rel).read_bytes() == data, rel
        assert (share / rel).stat().st_mode == (host / rel).stat().st_mode, rel
    recorded = engine.journal.base()
    for rel, data in files.items():
        assert recorded[rel].digest == hashlib.blake2b(data).hexdigest(), rel
    reads: list[tuple[str, str]] = []
    digest = SafeTree.digest

    def counted(self: SafeTree, rel: str) -> str:
        reads.append((self.root.name, rel))
        return digest(self, rel)

    monkeypatch.setattr(SafeTree, "digest", counted)
    second = engine.sync()
    engine.close()
    assert second.applied == 0
    assert set(reads) <= {("host", "big.bin")}


async def test_folders_the_kernel_would_not_watch_are_still_synced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Out of inotify watches (fs.inotify.max_user_watches): one watch per side here, the
    # root's. Changes in src/ are then found by the full passes of quiet moments.
    host, share = tmp_path / "host", tmp_path / "share"
    (host / "src" / "deep").mkdir(parents=True)
    share.mkdir()
    engine = SyncEngine(host, share, tmp_path / "state", delete_limit=20, grace=0.3)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.get_running_loop().create_task(engine.run(stop, ready, max_watches=1))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.sleep(1)  # the first pass's own changes are through

        async def busy() -> None:  # a watched folder that never stays quiet (a log)
            for i in range(200):
                (host / "busy.log").write_text(f"line {i}\n")
                await asyncio.sleep(0.1)

        writer = asyncio.get_running_loop().create_task(busy())
        (host / "src" / "deep" / "from-host.txt").write_text("host")
        (share / "src" / "from-share.txt").write_text("share")
        await settle(lambda: (share / "src" / "deep" / "from-host.txt").exists(), 10)
        await settle(lambda: (host / "src" / "from-share.txt").exists(), 10)
        assert "raise fs.inotify.max_user_watches" in caplog.text
        writer.cancel()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        engine.close()
