"""The host boundary against a real guest on virtiofs: the guest is root and acts on its own
share. A chain of links that leads out of the workspace is not made on the host, a git hook
written in the guest waits for a person, and `rm -rf /` in a one-file project leaves the
file on the host (held) until a person answers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.vm.conftest import Box, Env

SECRET = "canary-4f1e outside the workspace"


def wait(check: object, timeout: float = 20.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    assert check(), "did not happen in time"


def test_link_chains_and_git_hooks_from_a_real_guest(env: Env, box: Box) -> None:
    canary = box.workspace.parent / "canary-secret"
    canary.write_text(SECRET)
    hook = box.workspace / ".git" / "hooks" / "pre-commit"
    script = (
        "set -e; mkdir -p d .git/hooks; ln -s .. d/u1; sleep 1; "
        "ln -s d/u1/.. p1; ln -s p1/canary-secret r; "
        "printf '#!/bin/sh\\necho pwned\\n' > .git/hooks/pre-commit; "
        "chmod 6755 .git/hooks/pre-commit"
    )
    env.sk("exec", box.name, "--", "sudo", "sh", "-c", script, check=True)

    def pending() -> list[dict[str, str]]:
        out = env.sk("sync", "pending", box.name, "--json", check=True).stdout
        return list(json.loads(out))

    wait(lambda: (box.workspace / "d" / "u1").is_symlink(), 60)  # the harmless link arrives
    wait(lambda: any(p["path"] == ".git/hooks/pre-commit" for p in pending()), 60)  # held
    time.sleep(2)  # what the guest made with them had time to arrive too, had it been let
    assert not (box.workspace / "p1").is_symlink()  # resolves outside: never made
    for path in box.workspace.rglob("*"):
        if path.is_symlink():
            assert Path(path.resolve()).is_relative_to(box.workspace.resolve()), path
        elif path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert not hook.exists()  # held
    [held] = [p for p in pending() if p["path"] == ".git/hooks/pre-commit"]
    assert "echo pwned" in held["diff"]
    assert env.sk("sync", "pending", box.name, check=True).stdout.startswith("PATH")
    # Rejected: the host's version (none) goes back, so the hook leaves the guest too.
    env.sk("sync", "reject", box.name, check=True)
    gone = env.sk("exec", box.name, "--", "test", "-e", ".git/hooks/pre-commit")
    assert gone.returncode == 1
    assert not hook.exists()
    assert canary.read_text() == SECRET
    # Leave the shared sandbox as it was. Taking these away is most of this small
    # workspace's bytes, so the guard holds it: answered here, as a person would.
    env.sk("exec", box.name, "--", "sudo", "rm", "-rf", "d", "p1", "r", ".git", check=True)

    def settled() -> bool:
        status = json.loads(env.sk("sync", "status", box.name, check=True).stdout)
        if status["held"]:
            env.sk("sync", "approve", box.name, check=True)
            return False
        # Everything gone on the host too: a deletion held in a later batch would leave
        # the shared sandbox's sync paused for the tests after this one.
        return not any(os.path.lexists(box.workspace / n) for n in ("d", "p1", "r", ".git"))

    wait(settled, 60)


def test_rm_rf_in_a_one_file_project_leaves_the_file_held(env: Env, tmp_path: Path) -> None:
    project = tmp_path / "one-file-project"
    project.mkdir()
    (project / "main.py").write_text("print('my only work')\n")
    name = "onefile"
    env.sk(
        "run", "shell", str(project), "--name", name, "--memory", "512m", "--",
        "sh", "-c", "sudo rm -rf --no-preserve-root / 2>/dev/null; true",
        timeout=300,
    )  # fmt: skip
    share = env.state / name / "share"
    try:
        wait(lambda: not (share / "main.py").exists(), 60)  # the guest really deleted it
        wait(lambda: json.loads((env.state / name / "state.json").read_text())["sync"] == "paused")
        assert (project / "main.py").read_text() == "print('my only work')\n"
        assert "main.py" in env.sk("sync", "pending", name, check=True).stdout
        # As an ordinary user, the supervisor hands the share back with a chown in the
        # guest, whose /dev (and chown) rm -rf deleted: the reject carries on all the same.
        env.sk("sync", "reject", name, check=True)
        assert (share / "main.py").read_text() == "print('my only work')\n"  # the guest's copy
        assert (project / "main.py").read_text() == "print('my only work')\n"
    finally:  # a sandbox left paused would ask the next tests' editors about its files
        env.sk("rm", "-f", name, check=True)
