"""Commands as the default `agent` user, in a real guest: the agent (PID 1, root) takes the
user's ids only while it posix_spawns, and kits' files for the user are made in folders of
theirs."""

from __future__ import annotations

import asyncio
import base64
import signal
import textwrap
from pathlib import Path

import pytest

from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.protocol import ExitEvent, OutputEvent
from sandkit.sandbox.store import Store
from tests.vm.conftest import Box, Env

pytestmark = pytest.mark.vm

PROBE = (  # ls is not last: sh would exec it, and it would list its own fds
    'read -r pid comm state ppid pgrp sid rest < /proc/$$/stat; [ "$sid" = $$ ] && echo leader;'
    " id -un; id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' '; echo; ls -m /proc/$$/fd;"
    " grep -E '^(SigIgn|CapPrm|CapEff):' /proc/$$/status | cut -f2"
)


def test_a_command_as_agent_has_its_ids_groups_session_and_nothing_else(env: Env, box: Box) -> None:
    done = env.sk("exec", box.name, "--", "sh", "-c", PROBE, check=True)
    leader, user, groups, fds, ignored, permitted, effective = done.stdout.splitlines()
    db = env.sk("exec", "-u", "root", box.name, "--", "id", "-G", "agent", check=True)
    assert (leader, user) == ("leader", "agent")
    assert groups.split() == sorted(db.stdout.split(), key=int)  # the group database's
    pipe_and_xfsz = 1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)
    assert int(ignored, 16) & pipe_and_xfsz == 0
    assert (int(permitted, 16), int(effective, 16)) == (0, 0)  # no capability kept
    assert fds == "0, 1, 2"
    after = env.sk("exec", "-u", "root", box.name, "--", "id", "-u", check=True)
    assert after.stdout == "0\n"  # the agent is root again


async def test_a_pty_is_the_agents_controlling_terminal_and_theirs(box: Box) -> None:
    """^C typed on the terminal reaches the command as SIGINT: the terminal is its
    session's controlling one (opened in the child). The terminal is the user's."""
    async with await SupervisorClient.connect(Store().get(box.name).control) as client:
        remote = await client.exec(
            ["sh", "-c", "stat -c %U $(tty); echo ready; exec sleep 60"],
            pty=True,
            stdin=True,
            user="agent",
        )
        output, events = b"", []
        async with asyncio.timeout(60):
            while b"ready" not in output:
                events.append(event := await remote.next())
                assert isinstance(event, OutputEvent), events
                output += base64.b64decode(event.data)
            assert output.split()[0] == b"agent", output
            await remote.stdin(b"\x03")
            while not isinstance(event := await remote.next(), ExitEvent):
                events.append(event)
        assert event.signal == signal.SIGINT, events


KIT = """
schemaVersion: "2"
kind: mixin
name: deep
"""


def test_a_kits_file_in_missing_folders_makes_them_the_agents(env: Env, tmp_path: Path) -> None:
    kit = tmp_path / "deep"
    (kit / "files" / "home" / ".sandkit-deep" / "a" / "b").mkdir(parents=True)
    (kit / "spec.yaml").write_text(textwrap.dedent(KIT))
    (kit / "files" / "home" / ".sandkit-deep" / "a" / "b" / "file").write_text("deep\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    name = "deepfiles"
    env.sk(
        "create",
        "shell",
        str(ws),
        "--name",
        name,
        "--kit",
        str(kit),
        "--memory",
        "512m",
        check=True,
    )
    try:
        script = "cd ~/.sandkit-deep && stat -c '%U %a %n' . a a/b a/b/file"
        out = env.sk("exec", name, "--", "sh", "-c", script, check=True).stdout
        assert out.splitlines() == [
            "agent 755 .",
            "agent 755 a",
            "agent 755 a/b",
            "agent 644 a/b/file",
        ]
    finally:
        env.sk("rm", "-f", name)
