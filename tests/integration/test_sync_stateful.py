"""Random edits, creations, deletions, renames and mode changes on both sides, with the real
watcher running: the trees always converge, and no host content disappears because of sync
without being in the trash (or kept as a conflict copy)."""

from __future__ import annotations

import asyncio
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

NAMES = st.sampled_from(["a.txt", "b.txt", "dir/c.txt", "dir/sub/d.txt"])
TEXT = st.text(alphabet="xyz", min_size=1, max_size=6)


def contents(root: Path) -> dict[str, tuple[str, int]]:
    """Content and permission bits of every file: both must converge."""
    return {
        p.relative_to(root).as_posix(): (p.read_text(), p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


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
        self.protected: dict[str, str] = {}

    def teardown(self) -> None:
        if hasattr(self, "thread"):
            self.loop.call_soon_threadsafe(self.stop.set)
            self.thread.join(15)
            self.engine.close()
            self.loop.close()
            shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------
    def settle(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.engine.pending:  # held (the workspace would lose every file): a person
                self.engine.approve()  # says "delete them too"; they go to the trash
            if contents(self.host) == contents(self.share) and self.engine.status != "syncing":
                time.sleep(0.15)  # and stays so (no late batch)
                if contents(self.host) == contents(self.share):
                    return
            time.sleep(0.03)
        raise AssertionError(
            f"no convergence:\nhost {contents(self.host)}\nshare {contents(self.share)}"
        )

    def write(self, root: Path, name: str, text: str) -> None:
        path = root / name
        if path.parent.exists() and not path.parent.is_dir():
            return
        if path.is_dir():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def before_share_action(self) -> None:
        """What the host holds now must survive whatever the sandbox does next."""
        self.protected = {k: text for k, (text, _) in contents(self.host).items()}

    # -- rules --------------------------------------------------------------------------------
    @rule(name=NAMES, text=TEXT)
    def host_writes(self, name: str, text: str) -> None:
        self.write(self.host, name, "host:" + text)
        self.protected = {}
        self.settle()

    @rule(name=NAMES, text=TEXT)
    def share_writes(self, name: str, text: str) -> None:
        self.before_share_action()
        self.write(self.share, name, "share:" + text)
        self.settle()

    @rule(name=NAMES)
    def host_deletes(self, name: str) -> None:
        (self.host / name).unlink(missing_ok=True)
        self.protected = {}
        self.settle()

    @rule(name=NAMES)
    def share_deletes(self, name: str) -> None:
        self.before_share_action()
        (self.share / name).unlink(missing_ok=True)
        self.settle()

    @rule(a=NAMES, b=NAMES)
    def share_renames(self, a: str, b: str) -> None:
        self.before_share_action()
        src, dst = self.share / a, self.share / b
        if a != b and src.is_file() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dst)
        self.settle()

    @rule(a=NAMES, b=NAMES)
    def host_renames(self, a: str, b: str) -> None:
        src, dst = self.host / a, self.host / b
        if a != b and src.is_file() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dst)
        self.protected = {}
        self.settle()

    @rule(name=NAMES, mode=st.sampled_from([0o600, 0o644, 0o755]))
    def host_chmods(self, name: str, mode: int) -> None:
        if (self.host / name).is_file():
            (self.host / name).chmod(mode)
        self.protected = {}
        self.settle()

    @rule(name=NAMES, mode=st.sampled_from([0o600, 0o644, 0o755]))
    def share_chmods(self, name: str, mode: int) -> None:
        self.before_share_action()
        if (self.share / name).is_file():
            (self.share / name).chmod(mode)
        self.settle()

    @rule(name=NAMES, text=TEXT)
    def both_write(self, name: str, text: str) -> None:
        self.before_share_action()
        self.write(self.share, name, "share-both:" + text)
        self.write(self.host, name, "host-both:" + text)
        self.protected = {k: v for k, v in self.protected.items() if k != name}
        self.protected[name] = "host-both:" + text if (self.host / name).is_file() else ""
        self.settle()

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def converged_and_nothing_lost(self) -> None:
        if not hasattr(self, "engine"):
            return
        host = contents(self.host)
        assert host == contents(self.share)
        journal = Journal(self.root / "state" / "sync.db")
        trashed = {Path(t[3]).read_text() for t in journal.trash() if Path(t[3]).is_file()}
        journal.close()
        everywhere = {text for text, _ in host.values()} | trashed
        for rel, text in self.protected.items():
            assert not text or text in everywhere, f"{rel}: {text!r} was lost"


TestSync = SyncMachine.TestCase
TestSync.settings = settings(
    max_examples=15,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
