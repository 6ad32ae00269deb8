"""`sandkit exec` (cli/execute.py, the blocking one-shot client) against the real
supervisor (its control socket and strict handlers) with the in-memory guest of
tests/unit/sandbox/fakes.py; and its reading of what a supervisor sends, over a
socketpair."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandkit.cli import execute
from sandkit.rpc import LineSocket
from sandkit.sandbox.store import SandboxError
from sandkit.sandbox.wire import ErrorCode, ExecRequest, SupervisorError
from tests.unit.sandbox.test_supervisor import Box, started, stop

# Runs `sandkit ARGS...` and says, on its last stderr line, which heavy modules it loaded.
DRIVER = """
import json, sys
from sandkit.cli import main
rc = main(sys.argv[1:])
sys.stdout.flush()
heavy = sorted(m for m in sys.modules if m in ("asyncio", "pydantic", "sandkit.kits",
               "sandkit.sandbox.protocol", "sandkit.sandbox.lifecycle"))
sys.stderr.write("\\nLOADED " + json.dumps(heavy) + "\\n")
raise SystemExit(rc)
"""


class Ran:
    def __init__(self, code: int, out: bytes, err: bytes) -> None:
        self.code, self.out = code, out
        self.err, _, loaded = err.rpartition(b"\nLOADED ")
        self.loaded: list[str] = json.loads(loaded) if loaded else ["(did not finish)"]


async def spawn_sandkit(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DRIVER,
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def sandkit(*argv: str, stdin: bytes = b"") -> Ran:
    proc = await spawn_sandkit(*argv)
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return Ran(proc.returncode, out, err)


async def test_exec_prints_the_output_and_ends_with_the_programs_status(home: Path) -> None:
    box = await started(home)
    ran = await sandkit("exec", "box", "--", "echo", "hi")
    assert (ran.code, ran.out, ran.loaded) == (0, b"hi\n", [])
    failed = await sandkit("exec", "box", "--", "false")
    assert (failed.code, failed.out) == (1, b"")
    assert box.machine.guest.argvs[-2:] == [["echo", "hi"], ["false"]]
    await stop(box)


async def test_exec_i_passes_standard_input_to_its_end(home: Path) -> None:
    box = await started(home)
    data = os.urandom(40_000)  # (the in-memory guest reads lines up to 64 KiB)
    ran = await sandkit("exec", "-i", "box", "--", "cat", stdin=data)
    assert (ran.code, ran.out, ran.loaded) == (0, data, [])
    await stop(box)


async def test_signals_sent_to_exec_are_passed_on_to_the_program(home: Path) -> None:
    box = await started(home)
    proc = await spawn_sandkit("exec", "box", "--", "sleep", "60")
    while ["sleep", "60"] not in box.machine.guest.argvs:
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = await proc.communicate()
    ran = Ran(proc.returncode or 0, out, err)
    assert (ran.code, ran.loaded) == (128 + signal.SIGTERM, [])
    assert [n for _, n in box.machine.guest.signalled] == [signal.SIGTERM]
    await stop(box)


async def test_a_request_the_supervisor_refuses_is_its_error(home: Path) -> None:
    box: Box = await started(home)

    def refused() -> SupervisorError:
        call = execute.OneShotExec.connect(box.sandbox.control)
        try:
            call.start(request(argv=[]))  # the supervisor's ExecParams wants one word
        except SupervisorError as exc:
            return exc
        finally:
            call.close()
        raise AssertionError("the exec was not refused")

    error = await asyncio.to_thread(refused)
    assert error.code is ErrorCode.BAD_REQUEST and "argv" in error.message
    await stop(box)


def test_a_stopped_supervisor_is_not_answering(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="not answering"):
        execute.OneShotExec.connect(tmp_path / "control.sock")


# -- what comes back, over a socketpair -------------------------------------------------------
def request(**fields: Any) -> ExecRequest:
    base: ExecRequest = {
        "argv": ["x"],
        "env": {},
        "cwd": None,
        "user": "agent",
        "pty": False,
        "rows": 24,
        "cols": 80,
        "stdin": False,
    }
    base.update(fields)  # type: ignore[typeddict-item]
    return base


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@contextlib.contextmanager
def answered(*messages: dict[str, Any]) -> Iterator[execute.OneShotExec]:
    """A client whose supervisor has already sent ``messages``, all in one write."""
    ours, theirs = socket.socketpair()
    with theirs:
        theirs.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
        theirs.shutdown(socket.SHUT_WR)
        yield execute.OneShotExec(LineSocket(ours))  # execute.run closes it


def test_events_that_come_with_the_reply_are_not_waited_for(
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    with answered(
        {"event": "output", "exec": 7, "stream": "stdout", "data": b64(b"early ")},
        {"id": 1, "result": {"exec": 7}},
        {"event": "output", "exec": 7, "stream": "stderr", "data": b64(b"to stderr")},
        {"event": "exit", "exec": 7, "code": 4},
    ) as call:
        assert execute.run(call, request(), fd=0) == 4
    out, err = capfdbinary.readouterr()
    assert (out, err) == (b"early ", b"to stderr")


def test_malformed_or_foreign_events_are_never_passed_on(
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    with answered(
        {"id": 1, "result": {"exec": 7}},
        {"event": "output", "exec": 8, "stream": "stdout", "data": b64(b"another exec's")},
        {"event": "output", "exec": 7, "stream": "stdout", "data": "@@not base64"},
        {"event": "output", "exec": 7, "stream": "tty", "data": b64(b"no such stream")},
        {"event": "exit", "exec": 7, "code": True},  # a bool is not an exit code
        {"event": "port-listening", "port": 8000},  # another kind: ignored
        {"event": "output", "exec": 7, "stream": "stdout", "data": b64(b"ok")},
        {"event": "exit", "exec": 7, "signal": 9},
    ) as call:
        assert execute.run(call, request(), fd=0) == 128 + 9
    out, err = capfdbinary.readouterr()
    assert out == b"ok"
    assert err.count(b"skipping a malformed exec event") == 3


def test_an_answer_without_an_exec_id_is_another_versions() -> None:
    with (
        answered({"id": 1, "result": {"exec": "7"}}) as call,
        pytest.raises(SupervisorError) as refused,
    ):
        execute.run(call, request(), fd=0)
    assert refused.value.code is ErrorCode.FOREIGN_VERSION


def test_a_supervisor_that_goes_away_is_a_lost_connection() -> None:
    lost = pytest.raises(ConnectionError, match="lost the connection to the sandbox")
    with answered({"id": 1, "result": {"exec": 7}}) as call, lost:
        execute.run(call, request(), fd=0)


def test_with_a_terminal_a_window_size_change_is_sent_as_a_resize(
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    """The peer answers the exec, then signals SIGWINCH (again, until the client's handler
    is in place) and ends the exec once the resize comes."""
    ours, theirs = socket.socketpair()
    seen: list[dict[str, Any]] = []

    def supervisor() -> None:
        theirs.settimeout(0.02)
        buffer = b""
        while not any(m["method"] == "resize" for m in seen):
            try:
                chunk = theirs.recv(65536)
            except TimeoutError:
                if seen:  # the exec is answered: the window "changes"
                    os.kill(os.getpid(), signal.SIGWINCH)
                continue
            if not chunk:
                return  # the client gave up: its assertion says why
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                seen.append(json.loads(line))
                if seen[-1]["method"] == "exec":
                    theirs.sendall(b'{"id": 1, "result": {"exec": 7}}\n')
        theirs.sendall(json.dumps({"event": "exit", "exec": 7, "code": 0}).encode() + b"\n")

    peer = threading.Thread(target=supervisor)
    peer.start()
    try:
        assert execute.run(execute.OneShotExec(LineSocket(ours)), request(pty=True), fd=0) == 0
    finally:
        peer.join()
        theirs.close()
    resize = next(m for m in seen if m["method"] == "resize")
    assert resize["params"]["exec"] == 7 and resize["params"]["rows"] >= 1
