"""Random edits, creations, deletions, renames, mode changes and changes of type (a file
becomes a folder or a link, and back) on both sides, at any depth, with the real watcher
running: the trees always converge, and no host content disappears because of sync without
being in the trash (or kept as a conflict copy). Every write carries content no other write
had, so a lost version cannot hide behind an equal one."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sandkit.sync.engine import SyncEngine
from sandkit.sync.journal import Journal
from sandkit.sync.safefs import TMP_PREFIX

# Paths one to three levels deep over a few names, so that the same name is a file on one
# side and a folder (or a link) on the other, and parents change under their children.
NAMES = st.lists(st.sampled_from(["a", "b", "c.txt", "d"]), min_size=1, max_size=3).map("/".join)
TEXT = st.text(alphabet="xyz", min_size=0, max_size=6)
KINDS = st.sampled_from(["file", "dir", "link"])
# Targets never climb ('..'): a link made on either side resolves inside the workspace,
# unless it ends in a loop, which the engine refuses to make on the host.
TARGETS = st.lists(st.sampled_from(["a", "b", "c.txt", "d"]), min_size=1, max_size=2).map("/".join)
MODES = st.sampled_from([0o600, 0o644, 0o755])

Tree = dict[str, tuple[str, ...]]


def contents(root: Path) -> Tree:
    """Every entry: files by content and permission bits, links by target, folders. Sync's
    own temporary files are not entries; what vanishes while it is read (sync at work) is
    left out, and the caller looks again."""
    out: Tree = {}
    for base, dirs, files in os.walk(root):  # links to folders are listed, not entered
        for name in [*dirs, *files]:
            if name.startswith(TMP_PREFIX):
                continue
            path = Path(base) / name
            rel = path.relative_to(root).as_posix()
            with contextlib.suppress(FileNotFoundError):
                if path.is_symlink():
                    out[rel] = ("link", str(path.readlink()))
                elif path.is_dir():
                    out[rel] = ("dir",)
                else:
                    out[rel] = ("file", path.read_text(), oct(path.stat().st_mode & 0o777))
    return out


def texts(tree: Tree) -> set[str]:
    return {entry[1] for entry in tree.values() if entry[0] == "file"}


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def place(root: Path, name: str, kind: str, payload: str) -> None:
    """Put a ``kind`` at ``name``, replacing whatever is there and making every parent a
    folder (a file or link in the way is replaced: a change of type too)."""
    parent = root
    for part in name.split("/")[:-1]:
        parent = parent / part
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            remove(parent)
        parent.mkdir(exist_ok=True)
    path = root / name
    remove(path)
    if kind == "file":
        path.write_text(payload)
    elif kind == "dir":
        path.mkdir()
    else:
        path.symlink_to(payload)


def rename(root: Path, a: str, b: str) -> None:
    """``mv a b`` where that is a plain move: ``a`` exists, ``b`` does not, and the folders
    above ``b`` are folders (made if missing), not ``a`` itself."""
    src, dst = root / a, root / b
    above = [root.joinpath(*b.split("/")[:i]) for i in range(1, b.count("/") + 1)]
    in_the_way = [p for p in above if p.is_symlink() or (p.exists() and not p.is_dir())]
    plain = os.path.lexists(src) and not os.path.lexists(dst) and not b.startswith(a + "/")
    if plain and not in_the_way:
        for folder in above:
            folder.mkdir(exist_ok=True)
        src.rename(dst)


def touched(rel: str, name: str) -> bool:
    """Is ``rel`` replaced by placing something at ``name`` (itself, below it, or a
    parent of it that is in the way)?"""
    return rel == name or rel.startswith(name + "/") or name.startswith(rel + "/")


class SyncMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sandkit-sync-sm-"))
        self.host, self.share = self.root / "host", self.root / "share"
        self.host.mkdir()
        self.share.mkdir()
        self.engine = SyncEngine(self.host, self.share, self.root / "state", grace=0.2)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            started = asyncio.Event()
            task = self.loop.create_task(self.engine.run(self.stop, started))
            self.loop.run_until_complete(started.wait())
            ready.set()
            self.loop.run_until_complete(task)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(30)
        self.serial = itertools.count()
        self.protected: dict[str, str] = {}  # host files (path -> content) that must survive

    def teardown(self) -> None:
        if hasattr(self, "thread"):
            self.loop.call_soon_threadsafe(self.stop.set)
            self.thread.join(15)
            self.engine.close()
            self.loop.close()
            shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------
    def unique(self, side: str, text: str) -> str:
        return f"{side}-{next(self.serial)}:{text}"

    def view(self, root: Path) -> Tree:
        """A side as the other should mirror it. Links the engine refused to make on the
        host (loops) stay in the sandbox only, and say so in the status; the host keeps
        what it had at their paths."""
        refused = self.engine.refused
        return {
            k: v
            for k, v in contents(root).items()
            if not any(k == r or k.startswith(r + "/") for r in refused)
        }

    def settle(self) -> None:
        deadline = time.monotonic() + 15  # not a speed limit: how long sync may take to agree
        while time.monotonic() < deadline:
            if self.engine.pending:  # held (a burst, or every file): a person says "go on"
                self.engine.approve()  # and the host's versions go to the trash
            if self.view(self.host) == self.view(self.share) and self.engine.status != "syncing":
                time.sleep(0.15)  # and stays so (no late batch)
                if self.view(self.host) == self.view(self.share):
                    return
            time.sleep(0.03)
        raise AssertionError(
            f"no convergence:\nhost  {contents(self.host)}\nshare {contents(self.share)}\n"
            f"refused {self.engine.refused}, pending {self.engine.pending}"
        )

    def before_share_action(self) -> None:
        """What the host holds now must survive whatever the sandbox does next."""
        self.protected = {
            rel: entry[1] for rel, entry in contents(self.host).items() if entry[0] == "file"
        }

    def host_changed(self) -> None:
        self.protected = {}

    # -- rules: the sandbox ---------------------------------------------------------------------
    @rule(name=NAMES, kind=KINDS, text=TEXT, to=TARGETS)
    def share_places(self, name: str, kind: str, text: str, to: str) -> None:
        self.before_share_action()
        place(self.share, name, kind, to if kind == "link" else self.unique("share", text))
        self.settle()

    @rule(name=NAMES)
    def share_deletes(self, name: str) -> None:
        self.before_share_action()
        remove(self.share / name)
        self.settle()

    @rule(a=NAMES, b=NAMES)
    def share_renames(self, a: str, b: str) -> None:
        self.before_share_action()
        rename(self.share, a, b)
        self.settle()

    @rule(name=NAMES, mode=MODES)
    def share_chmods(self, name: str, mode: int) -> None:
        self.before_share_action()
        path = self.share / name
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)
        self.settle()

    # -- rules: the user on the host -------------------------------------------------------------
    @rule(name=NAMES, kind=KINDS, text=TEXT, to=TARGETS)
    def host_places(self, name: str, kind: str, text: str, to: str) -> None:
        place(self.host, name, kind, to if kind == "link" else self.unique("host", text))
        self.host_changed()
        self.settle()

    @rule(name=NAMES)
    def host_deletes(self, name: str) -> None:
        remove(self.host / name)
        self.host_changed()
        self.settle()

    @rule(a=NAMES, b=NAMES)
    def host_renames(self, a: str, b: str) -> None:
        rename(self.host, a, b)
        self.host_changed()
        self.settle()

    @rule(name=NAMES, mode=MODES)
    def host_chmods(self, name: str, mode: int) -> None:
        path = self.host / name
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)
        self.host_changed()
        self.settle()

    # -- both at once: a conflict ------------------------------------------------------------------
    @rule(name=NAMES, kind=KINDS, text=TEXT, to=TARGETS)
    def both_place(self, name: str, kind: str, text: str, to: str) -> None:
        self.before_share_action()
        place(self.share, name, "file", self.unique("share-both", text))
        mine = to if kind == "link" else self.unique("host-both", text)
        place(self.host, name, kind, mine)
        # The host's new version (and what it replaced) is the host's; the rest must survive.
        self.protected = {
            rel: content for rel, content in self.protected.items() if not touched(rel, name)
        }
        if kind == "file":
            self.protected[name] = mine
        self.settle()

    # -- invariant ---------------------------------------------------------------------------------
    @invariant()
    def converged_and_nothing_lost(self) -> None:
        assert self.view(self.host) == self.view(self.share)
        everywhere = texts(contents(self.host)) | self.trashed()
        lost = {rel: text for rel, text in self.protected.items() if text not in everywhere}
        assert not lost, f"lost from the host: {lost}"

    def trashed(self) -> set[str]:
        journal = Journal(self.root / "state" / "sync.db")
        try:
            stored = [Path(t[3]) for t in journal.trash()]
        finally:
            journal.close()
        out: set[str] = set()
        for path in stored:
            if path.is_dir() and not path.is_symlink():
                out |= texts(contents(path))
            elif path.is_file() and not path.is_symlink():
                out.add(path.read_text())
        return out


TestSync = SyncMachine.TestCase
TestSync.settings = settings(
    max_examples=15,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
