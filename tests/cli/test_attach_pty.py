"""The attach loop on a real pseudo-terminal: keys typed at the terminal reach the session
(Ctrl-C and a lone Ctrl-\\ as bytes, since the terminal is raw), sandkit takes only what
follows its escape key (detach; answers to a question), the approval question never eats a
key, and a question whose request ends elsewhere is withdrawn. The session and the
supervisor connection are stand-ins (a real one needs a VM: tests/vm/test_sessions.py);
the key reader, the prompt and the loop are the real ones."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import io
import os
import pty
import signal
import struct
import termios
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from sandkit.cli.attach import attach_session, follow
from sandkit.cli.keys import ESCAPE
from sandkit.cli.prompt import ApprovalPrompt
from sandkit.cli.sessions import choose
from sandkit.errors import SandkitError
from sandkit.sandbox.protocol import (
    SessionDetachedEvent,
    SessionExitEvent,
    SessionInfo,
    SessionOutputEvent,
)
from sandkit.sandbox.remote import SessionEvent

E = bytes((ESCAPE,))


class FakeSession:
    """A session as the supervisor shows it to one client: what was typed, kept."""

    def __init__(self, name: str = "agent", screen: bytes = b"") -> None:
        self.name, self.screen = name, screen
        self.events: asyncio.Queue[SessionEvent] = asyncio.Queue()
        self.typed = bytearray()
        self.sizes: list[tuple[int, int]] = []
        self.detached = False

    def print(self, data: bytes) -> None:
        self.events.put_nowait(
            SessionOutputEvent(
                session=self.name, stream="stdout", data=base64.b64encode(data).decode()
            )
        )

    async def next(self) -> SessionEvent:
        return await self.events.get()

    async def input(self, data: bytes = b"", eof: bool = False) -> None:
        self.typed += data

    async def resize(self, rows: int, cols: int) -> None:
        self.sizes.append((rows, cols))

    async def detach(self) -> None:
        self.detached = True


class FakeApprovals:
    """The prompt's supervisor connection: events fed by the test, answers recorded."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answers: list[tuple[str, str, bool]] = []

    async def watch(self) -> None:
        return None

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.queue.get()

    async def approve(self, host: str, remember: bool = False) -> None:
        self.answers.append(("approve", host, remember))

    async def deny(self, host: str, remember: bool = False) -> None:
        self.answers.append(("deny", host, remember))


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """(master, slave): the loop reads keys from the slave, the test types at the master."""
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):  # a hang fails the test instead of stalling the suite
        while not check():
            await asyncio.sleep(0.01)


def loop_task(
    session: FakeSession, slave: int, out: io.BytesIO, prompt: ApprovalPrompt | None = None
) -> asyncio.Task[int]:
    return asyncio.get_running_loop().create_task(
        attach_session(session, sandbox="box", fd=slave, out=out, prompt=prompt)
    )


async def test_keys_reach_the_session_raw_and_the_escape_detaches(
    terminal: tuple[int, int],
) -> None:
    master, slave = terminal
    before = termios.tcgetattr(slave)
    session = FakeSession(screen=b"$ earlier\r\noutput\r\n")
    shown = bytearray()

    def read_screen() -> bool:  # what the terminal shows, read at its master side
        with contextlib.suppress(BlockingIOError):
            shown.extend(os.read(master, 65536))
        return True

    os.set_blocking(master, False)
    out = os.fdopen(os.dup(slave), "wb", buffering=0)  # the user's terminal
    task = loop_task(session, slave, out)  # type: ignore[arg-type]
    # replayed first, byte for byte: the raw terminal does not make \n into \r\n again
    await until(lambda: read_screen() and shown == b"$ earlier\r\noutput\r\n")
    session.print(b"$ ")
    await until(lambda: read_screen() and shown.endswith(b"output\r\n$ "))
    # Ctrl-C and a Ctrl-\ with another key are the session's: the terminal is raw, so
    # neither becomes a signal here, and typed \r stays \r.
    os.write(master, b"sleep 9\x03ls\r" + E + b"x")
    await until(lambda: bytes(session.typed) == b"sleep 9\x03ls\r" + E + b"x")
    os.write(master, b"q" + E)  # the escape ends one read, its key starts the next
    await until(lambda: bytes(session.typed).endswith(b"q"))
    os.write(master, E)
    assert await task == 0
    assert session.detached
    assert bytes(session.typed) == b"sleep 9\x03ls\r" + E + b"xq"
    await until(lambda: read_screen() and shown.endswith(b"sandkit attach box agent]\r\n"))
    assert shown.endswith(b"$ \r\n[detached from box/agent: sandkit attach box agent]\r\n")
    assert termios.tcgetattr(slave) == before  # the terminal is given back as it was
    out.close()


async def test_the_session_ends_with_its_status(terminal: tuple[int, int]) -> None:
    _, slave = terminal
    session, out = FakeSession("build"), io.BytesIO()
    task = loop_task(session, slave, out)
    session.print(b"done\r\n")
    session.events.put_nowait(SessionExitEvent(session="build", code=3))
    assert await task == 3
    assert not session.detached and out.getvalue() == b"done\r\n"

    killed = FakeSession("build")
    killed.events.put_nowait(SessionExitEvent(session="build", signal=signal.SIGKILL))
    assert await loop_task(killed, slave, io.BytesIO()) == 128 + signal.SIGKILL


async def test_a_client_the_supervisor_let_go_is_told_how_to_come_back(
    terminal: tuple[int, int],
) -> None:
    _, slave = terminal
    session, out = FakeSession(), io.BytesIO()
    session.events.put_nowait(SessionDetachedEvent(session="agent", why="too far behind"))
    assert await loop_task(session, slave, out) == 1
    assert b"[detached: too far behind: sandkit attach box agent]" in out.getvalue()


async def test_a_window_size_change_resizes_the_session(terminal: tuple[int, int]) -> None:
    master, slave = terminal
    session = FakeSession()
    task = loop_task(session, slave, io.BytesIO())
    await asyncio.sleep(0)  # let the loop take the terminal
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 42, 132, 0, 0))
    os.kill(os.getpid(), signal.SIGWINCH)
    await until(lambda: (42, 132) in session.sizes)
    os.write(master, E + b"d")
    assert await task == 0


async def test_the_question_never_eats_a_key_and_is_answered_with_the_escape(
    terminal: tuple[int, int],
) -> None:
    master, slave = terminal
    session, out, said = FakeSession(), io.BytesIO(), io.BytesIO()
    approvals = FakeApprovals()
    prompt = ApprovalPrompt(approvals, said, 60, "box")
    task = loop_task(session, slave, out, prompt)
    approvals.queue.put_nowait(
        {"event": "approval", "id": 1, "host": "example.com", "port": 443, "since": 0}
    )
    await until(lambda: b"wants to reach" in said.getvalue())
    question = said.getvalue().decode()
    assert "example.com:443" in question and "Ctrl-\\ o allow once" in question
    os.write(master, b"echo hi\r")  # typed while asked: all of it is the shell's
    await until(lambda: bytes(session.typed) == b"echo hi\r")
    assert prompt.current is not None and approvals.answers == []
    os.write(master, E + b"o")
    await until(lambda: approvals.answers == [("approve", "example.com:443", False)])
    assert "example.com: allowed\r\n" in said.getvalue().decode()
    assert bytes(session.typed) == b"echo hi\r"  # the answer keys never reached the session

    # The next question's request ends elsewhere: withdrawn at once, and the keys that
    # would have answered it now answer nothing.
    approvals.queue.put_nowait(
        {"event": "approval", "id": 2, "host": "blocked.test", "port": 443, "since": 0}
    )
    await until(lambda: b"blocked.test:443" in said.getvalue())
    approvals.queue.put_nowait(
        {"event": "approval-done", "id": 2, "host": "blocked.test", "action": "timeout"}
    )
    await until(lambda: prompt.current is None)
    assert "blocked.test: denied (no answer in time); question withdrawn" in (
        said.getvalue().decode()
    )
    os.write(master, E + b"a")
    os.write(master, b"y\r")
    await until(lambda: bytes(session.typed).endswith(b"y\r"))
    assert len(approvals.answers) == 1
    os.write(master, E + E)
    assert await task == 0


async def test_answers_given_elsewhere_and_queued_questions() -> None:
    approvals, said = FakeApprovals(), io.BytesIO()
    prompt = ApprovalPrompt(approvals, said, 5, "box")
    prompt.on_event({"event": "approval", "id": 1, "host": "a.test", "port": 443, "since": 0})
    prompt.on_event({"event": "approval", "id": 2, "host": "b.test", "port": 80, "since": 0})
    prompt.on_event({"event": "approval", "id": 3, "host": "c.test", "port": 443, "since": 0})
    assert said.getvalue().decode().count("wants to reach") == 1  # one question at a time
    prompt.on_event({"event": "approval-done", "id": 3, "host": "c.test", "action": "deny"})
    prompt.on_event({"event": "approval-done", "id": 1, "host": "a.test", "action": "allow"})
    text = said.getvalue().decode()
    assert "a.test: allowed (answered elsewhere); question withdrawn" in text
    assert "b.test:80" in text and "c.test" not in text  # dropped before it was asked
    from sandkit.cli.keys import Command

    prompt.command(Command.ALLOW_ALWAYS)
    await until(lambda: approvals.answers == [("approve", "b.test", True)])
    assert "b.test: allowed for this sandbox" in said.getvalue().decode()
    prompt.on_event({"event": "sync-held", "kind": "protected-held", "paths": [".envrc"]})
    assert prompt.current is None  # a notice, not a question
    assert "sandkit sync pending box" in said.getvalue().decode()


def info(name: str, running: bool) -> SessionInfo:
    return SessionInfo(name=name, argv=["sh"], user="agent", pty=True, started=0, running=running)


def test_choose_the_session_a_verb_means() -> None:
    sessions = [info("agent", False), info("1", True)]
    assert choose(sessions, None, running=True) == "1"  # the only running one
    assert choose(sessions, None, running=False) == "agent"
    assert choose([*sessions, info("agent", True)], None, running=True) == "agent"
    with pytest.raises(SandkitError, match=r"no running session named 'agent' \(there: 1\)"):
        choose(sessions, "agent", running=True)
    with pytest.raises(SandkitError, match=r"more than one \(1, 2\)"):
        choose([info("1", True), info("2", True)], None, running=True)
    with pytest.raises(SandkitError, match="no running session here"):
        choose([info("agent", False)], None, running=True)


async def test_logs_print_the_scrollback_and_follow_to_the_end() -> None:
    session, out = FakeSession("1", screen=b"one\ntwo\n"), io.BytesIO()
    await follow(session, out, until_exit=False)
    assert out.getvalue() == b"one\ntwo\n"
    session.print(b"three\n")
    session.events.put_nowait(SessionExitEvent(session="1", code=0))
    await follow(session, out, until_exit=True)
    assert out.getvalue() == b"one\ntwo\none\ntwo\nthree\n"
