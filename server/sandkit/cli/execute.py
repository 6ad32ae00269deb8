"""`sandkit exec NAME -- CMD` (without -d): this terminal wired to one exec, bound to this
command as `docker exec` is, over a blocking socket.

A one-shot call needs no event loop: this module imports neither asyncio nor pydantic
(tests/unit/cli/test_exec_imports.py holds that), which is most of what the command used
to spend before it sent anything. The supervisor validates the request with
protocol.ExecParams as for any client; events coming back are checked by sandbox/wire.py.
The async twin, for `run` without a terminal (after its asyncio start), is attach.run_exec.
"""

from __future__ import annotations

import base64
import contextlib
import os
import selectors
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sandkit.cli.terminal import raw_mode, terminal_size
from sandkit.rpc import ConnectionLost, LineSocket, exit_status
from sandkit.sandbox.store import SandboxError
from sandkit.sandbox.wire import (
    ExecExit,
    ExecRequest,
    MalformedEvent,
    SupervisorError,
    error_of,
    exec_event,
    exec_id,
)

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # without a terminal
CHUNK = 1 << 16


class OneShotExec:
    """One exec over one connection. Requests after the exec (stdin, resize, signal) are
    sent without waiting; their replies are read with the events, and only one stdin
    request is in flight at a time (the supervisor's pace is the guest's)."""

    def __init__(self, connection: LineSocket) -> None:
        self.connection = connection
        self.exec = 0
        self._ids = 0
        self.pending: dict[int, str] = {}  # request id -> method, reply not read yet
        self.stdin_open = True  # until its end is sent, or a stdin request is refused
        self._held: list[dict[str, Any]] = []  # events that came before the exec's id

    @classmethod
    def connect(cls, socket: Path) -> OneShotExec:
        try:
            return cls(LineSocket.connect_unix(str(socket)))
        except (FileNotFoundError, ConnectionRefusedError):
            raise SandboxError("the sandbox's supervisor is not answering") from None

    def send(self, method: str, params: dict[str, Any]) -> int:
        self._ids += 1
        self.connection.send({"id": self._ids, "method": method, "params": params})
        self.pending[self._ids] = method
        return self._ids

    def ask(self, method: str, params: dict[str, Any]) -> Any:
        """One request before the exec, and its result (SupervisorError if refused)."""
        rid = self.send(method, params)
        while True:
            for message in self.connection.receive():
                if message.get("id") != rid:
                    continue  # an event: the exec has not started yet
                self.pending.pop(rid)
                if "error" in message:
                    body = error_of(message["error"])
                    raise SupervisorError(body.code, body.message)
                return message.get("result")

    def start(self, request: ExecRequest) -> None:
        """Send the exec and wait for its id; SupervisorError if it is refused."""
        rid = self.send("exec", dict(request))
        while self.exec == 0:
            for message in self.connection.receive():
                if "event" in message:
                    self._held.append(message)  # an event can overtake its exec's reply
                elif message.get("id") == rid:
                    self.pending.pop(rid)
                    if "error" in message:
                        body = error_of(message["error"])
                        raise SupervisorError(body.code, body.message)
                    self.exec = exec_id(message.get("result"))

    def take_held(self) -> list[dict[str, Any]]:
        """The events that came with the exec's reply (maybe all of them, exit included)."""
        held, self._held = self._held, []
        return held

    def close(self) -> None:
        self.connection.close()


def run(
    call: OneShotExec,
    request: ExecRequest,
    *,
    fd: int,
    started: Callable[[], None] = lambda: None,
) -> int:
    """Start ``request`` on ``call``'s connection (which this closes); its output to this
    process's stdout and stderr until it exits (its status). Standard input is passed on
    when ``request['stdin']``; with ``request['pty']`` this terminal is raw and its size
    follows, otherwise the signals sent to this command are passed on. ``started`` is
    called once the program runs."""
    try:
        call.start(request)
        started()
        with (
            _signals(request["pty"]) as wakeup,
            raw_mode(fd) if request["pty"] else (contextlib.nullcontext(False)),
        ):
            return _pump(call, fd, wakeup, stdin=request["stdin"])
    except ConnectionLost:
        raise ConnectionLost("lost the connection to the sandbox") from None
    finally:
        call.close()


@contextlib.contextmanager
def _signals(pty: bool) -> Iterator[int]:
    """A pipe that the signals to pass on (or SIGWINCH, with a terminal) are written to,
    so that the loop's poll wakes for them; the handlers are put back after."""
    wanted = (signal.SIGWINCH,) if pty else FORWARDED
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    saved = {sig: signal.signal(sig, lambda *_: None) for sig in wanted}
    old_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    try:
        yield read_end
    finally:
        signal.set_wakeup_fd(old_fd)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        os.close(read_end)
        os.close(write_end)


def _pump(call: OneShotExec, fd: int, wakeup: int, *, stdin: bool) -> int:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    selector = selectors.PollSelector()  # poll, not epoll: a regular file as stdin is fine
    selector.register(call.connection.fileno(), selectors.EVENT_READ, "socket")
    selector.register(wakeup, selectors.EVENT_READ, "signal")
    call.stdin_open = stdin
    reading = False  # stdin is read while no stdin request is in flight
    try:
        status = _handle(call, call.take_held(), out, err)
        while status is None:
            if not reading and call.stdin_open and "stdin" not in call.pending.values():
                selector.register(fd, selectors.EVENT_READ, "stdin")
                reading = True
            for key, _ in selector.select():
                if key.data == "socket":
                    status = _handle(call, call.connection.receive(), out, err)
                    if status is not None:
                        break
                elif key.data == "signal":
                    _pass_on(call, fd, os.read(wakeup, 64))
                else:
                    data = _read(fd)
                    call.send("stdin", _stdin(call.exec, data))
                    call.stdin_open = bool(data)
                    selector.unregister(fd)
                    reading = False
        return status
    finally:
        selector.close()


def _handle(
    call: OneShotExec, messages: list[dict[str, Any]], out: BinaryIO, err: BinaryIO
) -> int | None:
    """Handle what came; the exit status once the exec's exit is among it."""
    for message in messages:
        if "event" not in message:
            _reply(call, message)
            continue
        if message.get("exec") != call.exec:
            continue  # another stream's event: not this client's
        try:
            event = exec_event(message)
        except MalformedEvent as exc:
            print(f"sandkit: skipping a malformed exec event: {exc}", file=sys.stderr)
            continue
        if isinstance(event, ExecExit):
            return exit_status(event.code, event.signal)
        if event is not None:
            target = out if event.stream == "stdout" else err
            target.write(event.data)
            target.flush()
    return None


def _reply(call: OneShotExec, message: dict[str, Any]) -> None:
    rid = message.get("id")
    method = call.pending.pop(rid, None) if isinstance(rid, int) else None
    if method == "stdin" and "error" in message:
        call.stdin_open = False  # e.g. the program has ended: nothing more to pass on


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, CHUNK)
    except OSError:  # e.g. the terminal went away
        return b""


def _stdin(exec_id: int, data: bytes) -> dict[str, Any]:
    return {"exec": exec_id, "data": base64.b64encode(data).decode(), "eof": not data}


def _pass_on(call: OneShotExec, fd: int, signals: bytes) -> None:
    for number in signals:
        if number == signal.SIGWINCH:
            rows, cols = terminal_size(fd)
            call.send("resize", {"exec": call.exec, "rows": rows, "cols": cols})
        else:
            call.send("signal", {"exec": call.exec, "signal": number})
