"""`sandkit rm`: a missing name is an error (and nothing is removed), unless -f, as rm -f;
`rm --all` leaves the warm pool's members to `pool drain`. No VM is started: the
sandboxes here were made and never booted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.cli.test_kit_cli import SANDKIT


def sk(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "SANDKIT_POOL_SIZE": "0"}
    return subprocess.run([SANDKIT, *args], capture_output=True, text=True, env=env, timeout=60)


def names(tmp_path: Path) -> set[str]:
    root = tmp_path / "state" / "sandkit" / "sandboxes"
    return {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()


def test_missing_names_and_force(tmp_path: Path) -> None:
    assert sk(tmp_path, "create", "shell", "--name", "one").returncode == 0
    missing = sk(tmp_path, "rm", "one", "nope")
    assert missing.returncode == 1 and "no sandbox named 'nope'" in missing.stderr
    assert names(tmp_path) == {"one"}  # nothing removed
    forced = sk(tmp_path, "rm", "-f", "one", "nope")
    assert forced.returncode == 0, forced.stderr
    assert names(tmp_path) == set()


def test_rm_all_leaves_pool_members(tmp_path: Path) -> None:
    assert sk(tmp_path, "create", "shell", "--name", "two").returncode == 0
    # A member as `pool fill` makes it (never started here).
    member = tmp_path / "state" / "sandkit" / "sandboxes" / "pool-2c512m-abc123"
    member.mkdir(parents=True)
    (member / "config.json").write_text('{"name": "pool-2c512m-abc123", "agent": "shell"}')
    assert sk(tmp_path, "rm", "-f", "--all").returncode == 0
    assert names(tmp_path) == {"pool-2c512m-abc123"}
