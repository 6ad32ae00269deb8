"""The link that place_skills makes for a skill whose folder an install step (or
files/home) put in the guest: its own `sh -c` script and argv, taken from place_skills
itself and run by the host's real sh in a temporary folder that stands for the guest's /.
It links the folder into every skills directory, refuses a missing folder with the kit's
name and what to do, and gives the link to the agent's ids (tests/vm/test_skills.py runs
the same steps in a real guest)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from sandkit import guestuser
from sandkit.kits import resolve
from sandkit.kits.model import ResolvedSandbox
from sandkit.kits.source import KitSource
from sandkit.sandbox.kitapply import KitApplyError, place_skills
from sandkit.vm.channel import ExecResult, GuestChannel
from tests.conftest import WriteKit

AS_ROOT = os.geteuid() == 0


@dataclass
class Done:
    result: ExecResult

    async def stdin(self, data: bytes, eof: bool = False) -> None:
        raise AssertionError("a skill's link is made without input")

    async def wait(self) -> ExecResult:
        return self.result


@dataclass
class HostShell:
    """Stands in for the guest channel only: each exec's argv, exactly as place_skills
    built it, runs in the host's sh, in a bare environment as the guest agent's is."""

    path: str  # PATH: the system's, with a chown shim first when not root
    calls: list[tuple[list[str], str]] = field(default_factory=list)

    async def exec(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str = "root",
        stdin: bool = False,
    ) -> Done:
        self.calls.append((list(argv), user))
        done = subprocess.run(
            list(argv), env={**(env or {}), "PATH": self.path}, cwd=cwd, capture_output=True
        )
        return Done(ExecResult(done.returncode, None, done.stdout, done.stderr))

    async def write_file(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("these kits bundle no skill files")


@dataclass
class Guest:
    root: Path  # the guest's / inside the temporary folder
    sandbox: ResolvedSandbox
    sources: dict[str, KitSource]
    shell: HostShell
    chowned: Path  # what the chown shim was given, one call a line (not root)

    @property
    def source(self) -> Path:
        return self.root / "opt/tools/lint-skill"

    @property
    def links(self) -> list[Path]:
        return [self.root / f"home/agent/{d}/skills/lint" for d in (".claude", ".gemini")]

    async def place(self) -> None:
        await place_skills(cast(GuestChannel, self.shell), self.sandbox, self.sources)


@pytest.fixture
def guest(tmp_path: Path, write_kit: WriteKit) -> Guest:
    root = tmp_path / "guest"
    agent = write_kit(
        f"""\
        schemaVersion: "3"
        kind: workload
        capabilities:
          - type: com.docker.sandbox/agent-skills@1
            config: {{path: {root}/home/agent/.claude/skills}}
          - type: com.docker.sandbox/agent-skills@1
            config: {{path: {root}/home/agent/.gemini/skills}}
        """,
        "agent",
    )
    mixin = write_kit(
        f"""\
        schemaVersion: "3"
        kind: mixin
        capabilities:
          - type: com.docker.sandbox/agent-skill@1
            config: {{path: {root}/opt/tools/lint-skill, name: lint}}
        """,
        "lint",
    )
    resolution = resolve(str(agent), [str(mixin)])
    sources = {k.kit.name: k.source for k in resolution.loaded}
    chowned = tmp_path / "chowned"
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if not AS_ROOT:  # only root can give a file away: record what chown was asked instead
        shims = tmp_path / "shims"
        shims.mkdir()
        (shims / "chown").write_text(f'#!/bin/sh\necho "$*" >> {chowned}\n')
        (shims / "chown").chmod(0o755)
        path = f"{shims}:{path}"
    return Guest(root, resolution.sandbox, sources, HostShell(path), chowned)


async def test_the_folder_is_linked_into_each_skills_directory_and_given_to_the_agent(
    guest: Guest,
) -> None:
    guest.source.mkdir(parents=True)
    (guest.source / "SKILL.md").write_text("lint it\n")
    await guest.place()
    # One script per skills directory, run by root: the agent could not make the link in
    # a folder root made, nor give it away.
    assert [user for _, user in guest.shell.calls] == ["root", "root"]
    for (argv, _), link in zip(guest.shell.calls, guest.links, strict=True):
        assert argv[:2] == ["sh", "-c"]
        assert argv[3:] == ["sh", str(guest.source), str(link), "lint", guestuser.AGENT_IDS]
    for link in guest.links:
        assert link.readlink() == guest.source
        assert (link / "SKILL.md").read_text() == "lint it\n"
    if AS_ROOT:
        for link in guest.links:
            st = link.lstat()  # the link itself (chown -h), not the folder it names
            assert (st.st_uid, st.st_gid) == (guestuser.AGENT_UID, guestuser.AGENT_UID)
        assert guest.source.stat().st_uid == 0
    else:
        assert guest.chowned.read_text().splitlines() == [
            f"-h {guestuser.AGENT_IDS} {link}" for link in guest.links
        ]


async def test_placing_again_replaces_the_link_and_writes_nothing_into_the_folder(
    guest: Guest,
) -> None:
    """ln -sfn: a second run (a sandbox whose kit-state marker was lost) must not follow
    the existing link and leave a `lint` link inside the skill's own folder."""
    guest.source.mkdir(parents=True)
    (guest.source / "SKILL.md").write_text("lint it\n")
    await guest.place()
    await guest.place()
    assert sorted(p.name for p in guest.source.iterdir()) == ["SKILL.md"]
    for link in guest.links:
        assert link.readlink() == guest.source
        assert [p.name for p in link.parent.iterdir()] == ["lint"]


async def test_a_missing_folder_fails_with_the_kit_and_what_to_do(guest: Guest) -> None:
    with pytest.raises(KitApplyError) as caught:
        await guest.place()
    message = str(caught.value)
    first = guest.links[0]
    assert message.startswith(f"kit lint: skill file {first} [lint (")
    assert "failed with status 1:\n" in message
    assert message.endswith(
        f"the skill folder {guest.source} is not in the sandbox: ship it in the kit under "
        "files/skills/lint/ or create it in an install step"
    )
    assert len(guest.shell.calls) == 1  # the first failure stops the skills
    assert not (guest.root / "home").exists()  # checked before any folder is made
    assert not guest.chowned.exists()


@dataclass
class Written:
    """Stands in for the guest channel's write request: what place_skills asked for."""

    modes: dict[str, int] = field(default_factory=dict)

    async def write_file(self, path: str, data: bytes, mode: int, user: str, **_: object) -> bool:
        self.modes[path] = mode
        return True


async def test_a_bundled_skills_files_keep_their_permissions(
    tmp_path: Path, write_kit: WriteKit
) -> None:
    """A skill's script stays executable where it is placed (the kit file's mode, without
    set-id bits); other files are 0644."""
    agent = write_kit(
        'schemaVersion: "3"\nkind: workload\ncapabilities:\n'
        "  - type: com.docker.sandbox/agent-skills@1\n"
        "    config: {path: /home/agent/.claude/skills}\n",
        "agent",
    )
    files = {
        "files/skills/review/SKILL.md": "review\n",
        "files/skills/review/run.sh": "#!/bin/sh\n",
    }
    mixin = write_kit(
        'schemaVersion: "3"\nkind: mixin\ncapabilities:\n'
        "  - type: com.docker.sandbox/agent-skill@1\n"
        "    config: {path: /usr/share/skills/review}\n",
        "review",
        files=files,
    )
    (mixin / "files/skills/review/run.sh").chmod(0o4755)
    resolution = resolve(str(agent), [str(mixin)])
    written = Written()
    sources = {k.kit.name: k.source for k in resolution.loaded}
    await place_skills(cast(GuestChannel, written), resolution.sandbox, sources)
    assert written.modes == {
        "/usr/share/skills/review/SKILL.md": 0o644,
        "/usr/share/skills/review/run.sh": 0o755,
        "/home/agent/.claude/skills/review/SKILL.md": 0o644,
        "/home/agent/.claude/skills/review/run.sh": 0o755,
    }
