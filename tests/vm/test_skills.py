"""agent-skill@1 and agent-skills@1 in a real guest: an agent kit with two skills
directories, a mixin bundling a skill (its files at the skill's path and in each
directory) and a mixin whose install step makes a skill's folder (linked into each
directory, the link the agent's). A skill whose folder is nowhere fails the start with
the kit's name and what to do; a restart places nothing again. One sandbox for the module
(and one more that never starts)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.vm.conftest import Env

pytestmark = pytest.mark.vm

NAME = "skills"
CLAUDE, GEMINI = "/home/agent/.claude/skills", "/home/agent/.gemini/skills"
REVIEW = "/usr/share/skills/review"
LINT = "/opt/tools/lint-skill"

AGENT = f"""
schemaVersion: "3"
kind: workload
capabilities:
  - type: com.docker.sandbox/sbx@1
  - type: com.docker.sandbox/agent-skills@1
    config: {{path: {CLAUDE}}}
  - type: com.docker.sandbox/agent-skills@1
    config: {{path: {GEMINI}, mode: readwrite}}
"""
REVIEW_KIT = f"""
schemaVersion: "3"
kind: mixin
capabilities:
  - type: com.docker.sandbox/agent-skill@1
    config: {{path: {REVIEW}}}
"""
REVIEW_FILES = {
    "SKILL.md": "---\nname: review\ndescription: Review a change.\n---\nRead the diff first.\n",
    "scripts/check.sh": "#!/bin/sh\necho checked\n",
}
LINT_KIT = f"""
schemaVersion: "3"
kind: mixin
capabilities:
  - type: com.docker.sandbox/lifecycle@1
    config:
      install:
        - command: mkdir -p {LINT} && printf 'lint it\\n' > {LINT}/SKILL.md && echo once >> /opt/tools/installs
          user: "0"
  - type: com.docker.sandbox/agent-skill@1
    config: {{path: {LINT}, name: lint}}
"""
GONE_KIT = """
schemaVersion: "3"
kind: mixin
capabilities:
  - type: com.docker.sandbox/agent-skill@1
    config: {path: /opt/tools/gone-skill, name: gone}
"""

# What the tests read, as the agent (the command `run` starts), in `== label` sections.
CHECK = f"""
s() {{ printf '== %s\\n' "$1"; }}
s whoami; id -un
for d in {REVIEW} {CLAUDE}/review {GEMINI}/review; do
  for f in SKILL.md scripts/check.sh; do s "$d/$f"; cat "$d/$f"; done
done
s executable; for d in {REVIEW} {CLAUDE}/review {GEMINI}/review; do "$d/scripts/check.sh"; done
s bundled-owners
stat -c '%U %n' {CLAUDE}/review {CLAUDE}/review/SKILL.md {CLAUDE}/review/scripts \\
  {CLAUDE}/review/scripts/check.sh {GEMINI}/review {GEMINI}/review/SKILL.md \\
  {GEMINI}/review/scripts {GEMINI}/review/scripts/check.sh
s home-owners; stat -c '%U %n' /home/agent/.claude {CLAUDE} /home/agent/.gemini {GEMINI}
s links; stat -c '%U %N' {CLAUDE}/lint {GEMINI}/lint
s through-links; cat {CLAUDE}/lint/SKILL.md {GEMINI}/lint/SKILL.md
s boot; cat /proc/sys/kernel/random/boot_id
s installs; cat /opt/tools/installs
s markers; ls /var/lib/sandkit | grep -c '^created-'
"""


def sections(stdout: str) -> dict[str, str]:
    found: dict[str, str] = {}
    label = ""
    for line in stdout.splitlines(keepends=True):
        if line.startswith("== "):
            label = line[3:].rstrip("\n")
            found[label] = ""
        elif label:
            found[label] += line
    return found


def write_kit(root: Path, name: str, spec: str, files: dict[str, str] | None = None) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "spec.yaml").write_text(textwrap.dedent(spec))
    for rel, content in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(content)
    return folder


@dataclass
class Skills:
    env: Env
    agent: Path
    kits: dict[str, Path]
    workspace: Path
    first: subprocess.CompletedProcess[str]

    def seen(self) -> dict[str, str]:
        assert self.first.returncode == 0, self.first.stderr
        return sections(self.first.stdout)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.env.sk("run", str(self.agent), str(self.workspace), *args)


@pytest.fixture(scope="module")
def skills(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skills]:
    root = tmp_path_factory.mktemp("skillkits")
    agent = write_kit(root, "skill-agent", AGENT)
    kits = {
        "review": write_kit(
            root,
            "review",
            REVIEW_KIT,
            {f"files/skills/review/{k}": v for k, v in REVIEW_FILES.items()},
        ),
        "lint": write_kit(root, "lint", LINT_KIT),
        "gone": write_kit(root, "gone", GONE_KIT),
    }
    (kits["review"] / "files/skills/review/scripts/check.sh").chmod(0o755)
    workspace = tmp_path_factory.mktemp("skillws")
    s = Skills(env, agent, kits, workspace, subprocess.CompletedProcess([], 0))
    try:
        # lint first: its link is placed before the bundled files, so the link script is
        # what makes the skills directories (and ~/.claude, ~/.gemini) in the agent's home.
        s.first = s.run("--name", NAME, "--kit", str(kits["lint"]), "--kit", str(kits["review"]),
                        "--memory", "512m", "--", "sh", "-c", CHECK)  # fmt: skip
        yield s
    finally:
        env.sk("rm", "-f", NAME, f"{NAME}-gone")


def test_a_bundled_skill_is_at_its_path_and_in_each_skills_directory(skills: Skills) -> None:
    seen = skills.seen()
    for folder in (REVIEW, f"{CLAUDE}/review", f"{GEMINI}/review"):
        for rel, content in REVIEW_FILES.items():
            assert seen[f"{folder}/{rel}"] == content, f"{folder}/{rel}"
    made = [
        f"{d}/review{rel}"
        for d in (CLAUDE, GEMINI)
        for rel in ("", "/SKILL.md", "/scripts", "/scripts/check.sh")
    ]
    assert seen["bundled-owners"].splitlines() == [f"agent {p}" for p in made]
    assert seen["executable"] == "checked\n" * 3  # the kit file's mode: a script runs


def test_a_skill_made_by_an_install_step_is_the_agents_link_in_each_directory(
    skills: Skills,
) -> None:
    seen = skills.seen()
    assert seen["whoami"] == "agent\n"  # what follows was read as the agent
    assert seen["links"].splitlines() == [f"agent '{d}/lint' -> '{LINT}'" for d in (CLAUDE, GEMINI)]
    assert seen["through-links"] == "lint it\nlint it\n"
    assert seen["installs"] == "once\n"


def test_the_folders_made_in_the_agents_home_are_the_agents(skills: Skills) -> None:
    """The agent writes its own config folders (~/.claude, ~/.gemini) and may add skills:
    the folders placing the skills made there must be the agent's, whichever step made
    them."""
    seen = skills.seen()
    made = ["/home/agent/.claude", CLAUDE, "/home/agent/.gemini", GEMINI]
    assert seen["home-owners"].splitlines() == [f"agent {p}" for p in made]


def test_a_missing_skill_folder_fails_the_start_with_the_kit_and_what_to_do(
    skills: Skills,
) -> None:
    name = f"{NAME}-gone"
    done = skills.env.sk(
        "run", str(skills.agent), "--name", name, "--kit", str(skills.kits["gone"]),
        "--memory", "512m", "--", "true",
    )  # fmt: skip
    assert done.returncode != 0
    assert f"sandbox '{name}' did not start: kit gone: skill file {CLAUDE}/gone [gone (" in (
        done.stderr
    )
    assert (
        "the skill folder /opt/tools/gone-skill is not in the sandbox: ship it in the kit "
        "under files/skills/gone/ or create it in an install step"
    ) in done.stderr
    assert "Traceback" not in done.stderr
    # Kept as a record of the failure (as any failed start is), with nothing running:
    # no supervisor, no VM, and the other sandbox untouched.
    listed = {b["name"]: b for b in json.loads(skills.env.sk("ls", "--json", check=True).stdout)}
    assert listed[name]["state"] == "crashed"
    assert "ship it in the kit under files/skills/gone/" in listed[name]["error"]
    assert listed[NAME]["state"] == "running"
    state = json.loads((skills.env.state / name / "state.json").read_text())
    assert state["qemu_pid"] is None
    assert not alive_after(state["supervisor_pid"], wait=30)


def alive_after(pid: int | None, wait: float) -> bool:
    """Whether ``pid`` still runs after up to ``wait`` seconds (a failed supervisor is
    still cleaning up when its state says crashed)."""
    deadline = time.monotonic() + wait
    while pid is not None and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return pid is not None


def test_a_restart_places_nothing_again(skills: Skills) -> None:
    """The skill steps run once per sandbox (the kit-state marker): what the agent
    changed afterwards stays, and the restart does not fail."""
    first = skills.seen()
    env = skills.env
    env.sk("exec", NAME, "--", "sh", "-c", f"echo edited > {CLAUDE}/review/SKILL.md", check=True)
    env.sk("exec", "-u", "root", NAME, "--", "rm", f"{GEMINI}/lint", check=True)
    env.sk("stop", NAME, check=True)
    check = (
        f"cat /proc/sys/kernel/random/boot_id {CLAUDE}/review/SKILL.md /opt/tools/installs; "
        f"test -L {GEMINI}/lint && echo linked || echo unlinked; readlink {CLAUDE}/lint; "
        "ls /var/lib/sandkit | grep -c '^created-'"
    )
    again = skills.run("--name", NAME, "--", "sh", "-c", check)
    assert again.returncode == 0, again.stderr
    boot, *rest = again.stdout.splitlines()
    assert boot != first["boot"].strip()  # a new boot of the same disk
    assert rest == ["edited", "once", "unlinked", LINT, "1"]
    assert first["markers"] == "1\n"
