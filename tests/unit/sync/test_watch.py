"""TreeWatcher on a real tree with real inotify: what it watches and what it reports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandkit.sync.ignore import Ignore
from sandkit.sync.safefs import SafeTree
from sandkit.sync.watch import TreeWatcher, _open_watcher


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[SafeTree]:
    (tmp_path / "src").mkdir()
    (tmp_path / "node_modules" / "a" / "b").mkdir(parents=True)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "u1").symlink_to("..")  # a loop
    (tmp_path / "out").symlink_to("/")
    safe = SafeTree(tmp_path)
    yield safe
    safe.close()


def watcher(tree: SafeTree) -> TreeWatcher:
    ignore = Ignore.for_workspace(tree.root)
    return TreeWatcher(tree, lambda rel: ignore(rel, True))


def test_every_folder_but_ignored_ones_and_never_through_a_link(tree: SafeTree) -> None:
    w = watcher(tree)
    try:
        assert sorted(w.dirs.values()) == ["", "d", "src"]
    finally:
        w.close()


def test_a_new_folder_and_what_was_made_in_it_before_its_watch(tree: SafeTree) -> None:
    w = watcher(tree)
    try:
        (tree.root / "src" / "new" / "deep").mkdir(parents=True)
        (tree.root / "src" / "new" / "deep" / "x.py").write_text("x = 1\n")
        (tree.root / "node_modules" / "c").mkdir()
        (tree.root / "node_modules" / "c" / "index.js").write_text("")
        changed = w.read()
        assert changed is not None
        assert {"src/new", "src/new/deep", "src/new/deep/x.py"} <= changed
        assert "src/new/deep" in w.dirs.values()
        assert not any(rel.startswith("node_modules/") for rel in w.dirs.values())
        (tree.root / "src" / "new" / "deep" / "y.py").write_text("y = 1\n")
        assert w.read() == {"src/new/deep/y.py"}
    finally:
        w.close()


def test_a_folder_moved_is_watched_at_its_new_path(tree: SafeTree) -> None:
    w = watcher(tree)
    try:
        (tree.root / "src" / "pkg").mkdir()
        w.read()
        (tree.root / "src" / "pkg").rename(tree.root / "lib")
        w.read()
        assert "lib" in w.dirs.values() and "src/pkg" not in w.dirs.values()
        (tree.root / "lib" / "m.py").write_text("")
        assert w.read() == {"lib/m.py"}
    finally:
        w.close()


def test_out_of_watches_it_says_it_is_incomplete(tree: SafeTree) -> None:
    ignore = Ignore.for_workspace(tree.root)
    w = TreeWatcher(tree, lambda rel: ignore(rel, True), max_watches=2)
    try:
        assert w.incomplete and len(w.dirs) == 2
    finally:
        w.close()
    whole = watcher(tree)
    whole.close()
    assert not whole.incomplete


def test_a_folder_reached_through_a_link_is_never_watched(tree: SafeTree, tmp_path: Path) -> None:
    # The walk found lnk/sub a real folder; by the time of its watch the guest has swapped
    # lnk for a link to a host folder. IN_DONT_FOLLOW guards only a path's last part.
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    (outside / "sub").mkdir(parents=True)
    (tree.root / "lnk").symlink_to(outside)
    w = watcher(tree)
    try:
        w._watch("lnk/sub")
        assert "lnk/sub" not in w.dirs.values() and not w.incomplete
        (outside / "sub" / "host-file").write_text("")
        assert w.read() == set()
    finally:
        w.close()


def _inotify_fds() -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            count += str(fd.readlink()) == "anon_inode:inotify"
    return count


async def test_a_watcher_cancelled_while_it_is_set_up_is_closed_not_leaked(
    tmp_path: Path,
) -> None:
    for i in range(3000):  # long enough to set up that the cancel lands in the middle
        (tmp_path / f"d{i}").mkdir()
    safe = SafeTree(tmp_path)
    try:
        before = _inotify_fds()
        setup = asyncio.ensure_future(_open_watcher(safe, lambda rel: False, None))
        for _ in range(1000):  # until the thread has its inotify instance
            if _inotify_fds() > before:
                break
            await asyncio.sleep(0.001)
        setup.cancel()
        with pytest.raises(asyncio.CancelledError):
            await setup
        for _ in range(200):  # the thread finishes its walk, then the watcher is closed
            if _inotify_fds() == before:
                break
            await asyncio.sleep(0.05)
        assert _inotify_fds() == before
    finally:
        safe.close()
