"""Sessions with a real VM: the agent outlives the terminal that started it (SIGKILL the
client, `sandkit attach` replays the screen and the program is still going); `exec -d` and
`logs -f`; and the approval question never eats what the user types at the shell. One
sandbox, booted once, serves the three."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_kit_cli import SANDKIT
from tests.vm.conftest import Env
from tests.vm.test_approvals import Terminal

pytestmark = pytest.mark.vm
NAME = "sessbox"
COUNT = "for i in $(seq 1000); do echo n$i; sleep 0.2; done"
DETACH = "\x1c\x1c"  # Ctrl-\ Ctrl-\


@pytest.fixture(scope="module")
def sandbox(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workspace = tmp_path_factory.mktemp("sessions")
    # deny-all: every host asks; the ask time-out (120 s) is far longer than the tests wait,
    # so a question withdrawn within them was withdrawn because its asker left
    env.sk(
        "create", "shell", str(workspace), "--name", NAME, "--default", "deny-all",
        "--ask-timeout", "120", "--memory", "512m", check=True,
    )  # fmt: skip
    yield workspace
    env.sk("rm", "-f", NAME, timeout=120)


def sessions(env: Env) -> dict[str, dict[str, object]]:
    rows = json.loads(env.sk("sessions", NAME, "--json", check=True).stdout)
    return {row["name"]: row for row in rows}


def counted(term: Terminal) -> list[int]:
    return [int(n) for n in re.findall(r"\bn(\d+)\r?\n", term.text)]


def test_the_agent_outlives_its_client_and_attach_replays_it(env: Env, sandbox: Path) -> None:
    first = Terminal(
        [SANDKIT, "run", "shell", str(sandbox), "--name", NAME, "--", "sh", "-c", COUNT],
        env.vars,
    )
    try:
        first.expect("n5\r\n", timeout=300)
    finally:
        first.proc.kill()  # SIGKILL: no detach, no goodbye
        first.close()
    seen_first = max(counted(first))
    agent = sessions(env)["agent"]
    assert agent["running"] and agent["argv"] == ["sh", "-c", COUNT]

    again = Terminal([SANDKIT, "attach", NAME], env.vars)
    try:
        again.expect("n1\r\n")  # the screen from before, replayed
        later = seen_first + 10
        again.expect(f"n{later}\r\n")  # and still counting
        assert counted(again)[:seen_first] == list(range(1, seen_first + 1))
        again.type(DETACH)
        again.expect(f"[detached from {NAME}/agent: sandkit attach {NAME} agent]")
        assert again.close() == 0
    finally:
        if again.proc.poll() is None:
            again.proc.kill()
            again.close()
    assert sessions(env)["agent"]["running"]  # detaching left it running
    env.sk("sessions", NAME, "--stop", "agent", check=True)
    logs = env.sk("logs", "-f", NAME, "agent", timeout=60, check=True)  # until it ends
    assert f"n{later}\n" in logs.stdout.replace("\r", "")
    assert not sessions(env)["agent"]["running"]


def test_exec_detached_and_logs(env: Env, sandbox: Path) -> None:
    script = "for i in 1 2 3; do echo line$i; sleep 1; done; echo oops >&2; exit 7"
    started = env.sk("exec", "-d", "--session", "job", NAME, "--", "sh", "-c", script, check=True)
    assert started.stdout == "job\n"
    followed = env.sk("logs", "-f", NAME, "job", timeout=120, check=True)
    assert followed.stdout.splitlines()[:3] == ["line1", "line2", "line3"]
    assert "oops" in followed.stdout  # no terminal: both streams are in the scrollback
    job = sessions(env)["job"]
    assert not job["running"] and job["exit_status"] == 7
    again = env.sk("logs", NAME, "job", check=True)  # an ended session keeps its output
    assert again.stdout == followed.stdout
    table = env.sk("sessions", NAME, check=True).stdout
    assert re.search(r"^job\s+sh -c .*exited 7", table, re.M), table
    assert env.sk("attach", NAME, "job").returncode == 1  # nothing running to attach to


def test_a_question_never_eats_the_keys_typed_at_the_shell(env: Env, sandbox: Path) -> None:
    term = Terminal([SANDKIT, "run", "shell", str(sandbox), "--name", NAME], env.vars)
    try:
        term.expect(f"agent@{NAME}", timeout=300)  # bash's prompt
        term.type("echo rea''dy\r")
        term.expect("ready")
        term.type("curl -s -m 3 -o /dev/null https://example.com/ &\r")
        term.expect("wants to reach example.com:443")
        term.expect("Ctrl-\\ o allow once")
        term.type("echo hi\r")  # while asked: the shell gets every key
        term.expect("echo hi")  # echoed by the guest's terminal...
        term.expect("hi\r\n")  # ...and run by the shell, the question still open
        # curl gives up after 3 s: the question goes at once, not at the 120 s time-out
        term.expect(
            "example.com: no longer asked (the program that wanted it gave up); question withdrawn",
            timeout=30,
        )
        term.type("echo st''ill-mine\r")
        term.expect("still-mine")
        term.type("exit\r")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.close()
    assert not sessions(env)["agent"]["running"]
