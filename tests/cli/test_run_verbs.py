"""`sandkit run KIT --resume ID` (or --prompt, --continue) with a kit that declares no such
session verb fails before anything is made or started: exit status 1, the supervisor's
message naming the kit, no sandbox (or the existing one left as it was). The console
script, as a user runs it; no VM is booted."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.cli.test_kit_cli import SANDKIT
from tests.conftest import WriteKit
from tests.lsp.test_agent_verbs import PROMPT_ONLY  # the kit the editor's test refuses too

REFUSED = "kit 'tool' declares no 'resume' session verb (agent-sessions@1)"


def sk(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "SANDKIT_POOL_SIZE": "0",
    }
    return subprocess.run(
        [SANDKIT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def sandboxes(tmp_path: Path) -> dict[str, str]:
    """Each sandbox's state, as state.json says (none written yet: 'created')."""
    root = tmp_path / "state" / "sandkit" / "sandboxes"
    found = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        state = folder / "state.json"
        found[folder.name] = json.loads(state.read_text())["state"] if state.exists() else "created"
    return found


def test_an_undeclared_verb_is_refused_before_a_sandbox_is_made(
    tmp_path: Path, write_kit: WriteKit
) -> None:
    kit = write_kit(PROMPT_ONLY, "tool")
    workspace = tmp_path / "project"
    workspace.mkdir()
    done = sk(tmp_path, "run", str(kit), str(workspace), "--resume", "abc")
    assert done.returncode == 1, done.stderr
    assert REFUSED in done.stderr
    assert sandboxes(tmp_path) == {}
    # --continue too, with the kit's name; --prompt is declared and gets past the check.
    done = sk(tmp_path, "run", str(kit), str(workspace), "--continue")
    assert (done.returncode, "kit 'tool' declares no 'continue'" in done.stderr) == (1, True)
    assert sandboxes(tmp_path) == {}


def test_an_existing_sandbox_is_not_started_for_an_undeclared_verb(
    tmp_path: Path, write_kit: WriteKit
) -> None:
    kit = write_kit(PROMPT_ONLY, "tool")
    made = sk(tmp_path, "create", str(kit), "--name", "box")
    assert made.returncode == 0, made.stderr
    before = sandboxes(tmp_path)
    done = sk(tmp_path, "run", str(kit), "--name", "box", "--resume", "abc")
    assert done.returncode == 1, done.stderr
    assert REFUSED in done.stderr
    assert sandboxes(tmp_path) == before == {"box": "created"}
