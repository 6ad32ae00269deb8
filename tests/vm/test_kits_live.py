"""Kits applied in a real guest: env, files/home and files/workspace, install once, setup
files, startup at every boot (background ones too), agent context with the managed index."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.vm.conftest import Env, wait_for_member

pytestmark = pytest.mark.vm

KIT = """
schemaVersion: "2"
kind: mixin
name: demo
environment:
  variables: {DEMO_VAR: demo-value}
setup:
  install:
    - command: echo "installed-by-$(id -un) $DEMO_VAR" >> /opt/installed
      description: mark the install
  files:
    - path: /etc/demo.conf
      content: "workdir=${WORKDIR}"
      mode: "0600"
    - path: /home/agent/keep.txt
      content: from-kit
      onlyIfMissing: true
  startup:
    - command: [sh, -c, "echo boot >> /var/tmp/started"]
      user: "0"
    - command: [sleep, "1000"]
      background: true
agentInstructions:
  content: |
    ## Demo
    Use the demo tool.
"""

BROKEN = """
schemaVersion: "2"
kind: mixin
name: broken
setup:
  install:
    - command: echo about to fail; exit 3
      description: a failing step
"""


def kit(root: Path, name: str, text: str, files: dict[str, str]) -> Path:
    path = root / name
    (path / "files").mkdir(parents=True)
    (path / "spec.yaml").write_text(textwrap.dedent(text))
    for rel, content in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(content)
    return path


@pytest.mark.parametrize("start", ["cold", "pooled", "prepared"])
def test_kit_steps_in_the_guest(env: Env, tmp_path: Path, start: str) -> None:
    """The same kit, the same results: on a cold-booted VM, on one adopted from the warm
    pool (installs run at adoption), and on one prepared for the kit (installs ran before,
    and are in the snapshot that the next members are cloned from)."""
    demo = kit(
        tmp_path,
        "demo",
        KIT,
        {
            "files/home/.config/demo/settings": "home-file",
            "files/workspace/from-kit.txt": "ws-file",
            "files/workspace/README.md": "kit's readme",
        },
    )
    if start != "cold":
        env = Env({**env.vars, "SANDKIT_POOL_SIZE": "1"}, env.state)
        prepare = ["--kit", str(demo)] if start == "prepared" else []
        env.sk("pool", "fill", "--memory", "512m", *prepare, timeout=600, check=True)
    ws = tmp_path / "proj"
    ws.mkdir()
    (ws / "README.md").write_text("the user's readme")
    name = f"kitlive-{start}"
    env.sk(
        "create",
        "shell",
        str(ws),
        "--name",
        name,
        "--kit",
        str(demo),
        "--memory",
        "512m",
        check=True,
    )
    try:
        script = (
            "cat /opt/installed; sudo cat /etc/demo.conf; echo; stat -c %a /etc/demo.conf; "
            "cat ~/.config/demo/settings; echo; cat from-kit.txt; echo; echo $DEMO_VAR; "
            "cat /var/tmp/started | wc -l; pgrep -c -x sleep; cat ~/keep.txt"
        )
        state = json.loads((env.state / name / "state.json").read_text())
        assert (state["adopted_from"] is not None) == (start != "cold")
        assert state["adopted_prepared"] == (start == "prepared")
        out = env.sk("exec", name, "--", "sh", "-c", script, check=True).stdout.splitlines()
        assert out == [
            "installed-by-root demo-value",
            f"workdir={ws}",
            "600",
            "home-file",
            "ws-file",
            "demo-value",
            "1",
            "1",
            "from-kit",
        ]
        assert (ws / "README.md").read_text() == "the user's readme"  # never overwritten
        assert (ws / "from-kit.txt").read_text() == "ws-file"  # placed, then synced home
        context = env.sk("exec", name, "--", "cat", f"{tmp_path}/AGENTS.md", check=True).stdout
        assert context.startswith("You are working inside a sandkit sandbox")
        assert (
            "<!-- sbx:kits-section start -->\n## Kits\n- demo: kits-agent-context/demo.md\n"
            in context
        )
        mixin = env.sk(
            "exec", name, "--", "cat", f"{tmp_path}/kits-agent-context/demo.md", check=True
        )
        assert mixin.stdout == "## Demo\nUse the demo tool.\n"
        env.sk("exec", name, "--", "sh", "-c", "echo mine > ~/keep.txt", check=True)
        env.sk("stop", name, check=True)
        again = env.sk(
            "exec",
            name,
            "--",
            "sh",
            "-c",
            "cat /opt/installed | wc -l; cat /var/tmp/started | wc -l; cat ~/keep.txt",
            check=True,
        )
        assert again.stdout.split() == ["1", "2", "mine"]  # install once, startup per boot
        if start == "prepared":
            # The refill is a clone of the snapshot the first member saved after its install;
            # each clone trusts the proxy CA of its own supervisor, put in after the restore.
            refilled = wait_for_member(env, "restored from golden snapshot ", "-kits-")
            env.sk("create", "shell", str(ws), "--name", f"{name}-2", "--kit", str(demo),
                   "--memory", "512m", check=True)  # fmt: skip
            state = json.loads((env.state / f"{name}-2" / "state.json").read_text())
            assert state["adopted_from"] == refilled and state["adopted_prepared"]
            check = (
                "cat /opt/installed | wc -l; ls /var/lib/sandkit/ | grep -c '^ca-'; "
                "grep -c 'BEGIN CERTIFICATE' /usr/local/share/ca-certificates/sandkit-proxy.crt"
            )
            seen = env.sk("exec", f"{name}-2", "--", "sh", "-c", check, check=True).stdout.split()
            assert seen[:2] == ["1", "1"] and int(seen[2]) >= 1
            # A member prepared for these kits is never given to a sandbox without them.
            wait_for_member(env, "restored from golden snapshot ", "-kits-")
            env.sk("create", "shell", "--name", f"{name}-3", "--memory", "512m", check=True)
            state = json.loads((env.state / f"{name}-3" / "state.json").read_text())
            assert state["adopted_from"] is None
    finally:
        env.sk("rm", "-f", name, f"{name}-2", f"{name}-3")
        if start != "cold":
            wait_for_member(env, "pooled (")  # no refill left booting
            env.sk("pool", "drain", timeout=300)


def test_a_failing_step_names_the_kit_and_shows_its_output(env: Env, tmp_path: Path) -> None:
    broken = kit(tmp_path, "broken", BROKEN, {})
    done = env.sk(
        "run",
        "shell",
        "--name",
        "broken-box",
        "--kit",
        str(broken),
        "--memory",
        "512m",
        "--",
        "true",
    )
    try:
        assert done.returncode == 1
        assert "kit broken: install command 1 (a failing step)" in done.stderr
        assert "status 3" in done.stderr and "about to fail" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        env.sk("rm", "-f", "broken-box")
