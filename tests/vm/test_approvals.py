"""Approvals from the terminal, with a real VM: `sandkit run` in a real pseudo-terminal asks
about hosts no rule covers; `sandkit policy approve` answers from another process; no answer
in time means deny; "allow for this sandbox" outlives the run; nobody watching means an
immediate deny."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.test_kit_cli import SANDKIT
from tests.vm.conftest import Env

pytestmark = pytest.mark.vm
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

SCRIPT = """
c() { curl -s -o /dev/null -w "$1=%{http_code}:%{http_connect}\\n" "https://$2:PORT/"; }
c one api.test; c two other.test; c three blocked.test; c four api.test; c five other.test
"""


class Terminal:
    """A child process on a real pseudo-terminal; everything it printed, kept."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            argv, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)
        self.seen = b""
        self.pos = 0

    def expect(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text[self.pos :]:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not self._read(0.1)):
                raise AssertionError(f"never saw {text!r}; the terminal showed:\n{self.text}")
            self._read(min(left, 1.0))
        self.pos = self.text.index(text, self.pos) + len(text)  # the next expect looks later

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.seen += data
        return bool(data)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    @property
    def text(self) -> str:
        """What a person sees: colours and cursor moves left out."""
        return ANSI.sub("", self.seen.decode(errors="replace"))

    def close(self) -> int:
        code = self.proc.wait(60)
        os.close(self.master)
        return code


def test_terminal_approvals(env: Env, upstream: tuple[int, Path]) -> None:
    port, ca = upstream
    name = "asker"
    pins = [f"--resolve={h}=127.0.0.1" for h in ("api.test", "other.test", "blocked.test")]
    env.sk(
        "create",
        "shell",
        "--name",
        name,
        "--default",
        "deny-all",
        "--memory",
        "512m",
        "--upstream-ca",
        str(ca),
        "--ask-timeout",
        "4",
        *pins,
        check=True,
    )
    script = SCRIPT.replace("PORT", str(port))
    term = Terminal([SANDKIT, "run", "shell", "--name", name, "--", "sh", "-c", script], env.vars)
    try:
        term.expect(f"wants to reach api.test:{port}", timeout=240)
        term.type("\x1co")  # Ctrl-\ o: allow once (plain keys go to the agent)
        term.expect("one=200:200")

        term.expect(f"wants to reach other.test:{port}")
        held = json.loads(env.sk("policy", "pending", name, "--json", check=True).stdout)
        assert [(h["host"], h["port"]) for h in held] == [("other.test", port)]
        answered = env.sk("policy", "approve", name, "other.test", check=True)
        assert "1 held request allowed; other.test is allowed in asker from now on" in (
            answered.stdout
        )
        term.expect("two=200:200")
        assert "other.test: allowed" in term.text  # the prompt learnt of the answer elsewhere

        term.expect(f"wants to reach blocked.test:{port}")
        term.expect("three=000:403", timeout=30)  # nobody answered within --ask-timeout
        assert "blocked.test: denied (no answer in time)" in term.text

        term.expect(f"wants to reach api.test:{port}")  # "once" was once
        term.type("\x1cn")  # Ctrl-\ n: deny
        term.expect("four=000:403")
        term.expect("five=200:200")  # remembered: no question this time
        assert term.text.count(f"wants to reach other.test:{port}") == 1
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.close()

    # Nobody is watching now: an unlisted host is denied at once, not held for the 4 s
    # --ask-timeout (curl gives up at 3 s, on its own clock: the CLI's start is not timed).
    denied = env.sk(
        "exec",
        name,
        "--",
        "curl",
        "-s",
        "--max-time",
        "3",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}:%{http_connect}",
        f"https://api.test:{port}/",
    )
    assert denied.stdout == "000:403", denied
    before = json.loads((env.state / name / "state.json").read_text())["qemu_pid"]
    env.sk("stop", name, check=True)
    rows = json.loads(env.sk("ls", "--json", check=True).stdout)
    assert next(r for r in rows if r["name"] == name)["state"] == "stopped"
    again = env.sk(
        "exec",
        name,
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}:%{http_connect}",
        f"https://other.test:{port}/",
    )
    assert again.stdout == "200:200"  # "for this sandbox" survives a restart
    after = json.loads((env.state / name / "state.json").read_text())["qemu_pid"]
    assert isinstance(before, int) and isinstance(after, int) and after != before  # a new VM
    wanted = {("api.test", "approved"), ("blocked.test", "default-deny")}
    wanted.add(("api.test", "refused-by-user"))
    log = env.decisions(name, lambda rs: wanted <= {(r["host"], r["reason"]) for r in rs})
    reasons = [(r["host"], r["reason"]) for r in log]
    assert ("api.test", "approved") in reasons and ("blocked.test", "default-deny") in reasons
    assert ("api.test", "refused-by-user") in reasons
    refused = env.sk("policy", "deny", name, "nothing-held.test", "--once")
    assert refused.returncode == 1 and "holds no request for nothing-held.test" in refused.stderr
    env.sk("rm", "-f", name, check=True)
