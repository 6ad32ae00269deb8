"""This terminal wired to a program in a sandbox.

Two ways: a *session* (``run``, ``attach``), which the supervisor owns, so leaving (Ctrl-\\
Ctrl-\\, or closing the terminal) leaves it running; and a plain *exec* (``exec``), bound to
this client as ``docker exec`` is. Both share the raw-mode and standard-input code here.
In a session every key goes through ``KeyReader``: sandkit takes only what follows its
escape key (cli/keys.py), so a question on the screen never eats what the user types."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, BinaryIO, Protocol

from sandkit.cli.keys import Command, KeyReader
from sandkit.cli.terminal import raw_mode, terminal_size
from sandkit.errors import SandkitError
from sandkit.rpc import exit_status
from sandkit.tasks import spawn

if TYPE_CHECKING:
    from sandkit.cli.prompt import ApprovalPrompt
    from sandkit.sandbox.remote import RemoteExec, SessionEvent


class Session(Protocol):
    """What the attach loop needs of ``sandbox.remote.RemoteSession``."""

    name: str
    screen: bytes

    async def next(self) -> SessionEvent: ...
    async def input(self, data: bytes = b"", eof: bool = False) -> None: ...
    async def resize(self, rows: int, cols: int) -> None: ...
    async def detach(self) -> None: ...


async def read_input(fd: int) -> AsyncIterator[bytes]:
    """Chunks of ``fd`` as they come, then b"" at its end."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # e.g. the terminal went away
            data = b""
        queue.put_nowait(data)
        if not data:
            loop.remove_reader(fd)

    try:
        loop.add_reader(fd, readable)
    except (PermissionError, ValueError):  # a regular file: not pollable, read it whole
        yield await asyncio.to_thread(_read_all, fd)
        yield b""
        return
    os.set_blocking(fd, False)
    try:
        while data := await queue.get():
            yield data
        yield b""
    finally:
        with contextlib.suppress(ValueError):
            loop.remove_reader(fd)
        os.set_blocking(fd, True)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write(out: BinaryIO, data: bytes) -> None:
    out.write(data)
    out.flush()


# -- sessions ---------------------------------------------------------------------------------
async def attach_session(
    session: Session,
    *,
    sandbox: str,
    fd: int,
    out: BinaryIO,
    prompt: ApprovalPrompt | None = None,
) -> int:
    """Replay the session's screen, then wire ``fd`` (keys) and ``out`` to it until it ends
    (its exit status) or the user detaches (0; the session keeps running)."""
    loop = asyncio.get_running_loop()
    keys = KeyReader()
    leave = asyncio.Event()

    async def pump() -> None:
        with contextlib.suppress(SandkitError):  # the session ended: its exit says so
            await _type(session, keys, fd, leave, prompt)

    def resized() -> None:
        spawn(session.resize(*terminal_size(fd)), "resize")

    with raw_mode(fd) as raw:
        _write(out, session.screen)  # raw: the screen's \r\n must not become \r\r\n
        if raw:
            loop.add_signal_handler(signal.SIGWINCH, resized)
        typing = loop.create_task(pump())
        watcher = spawn(prompt.run(), "approval-prompt") if prompt is not None else None
        output = loop.create_task(_show(session, out))
        leaving = loop.create_task(leave.wait())
        try:
            await asyncio.wait({output, leaving}, return_when=asyncio.FIRST_COMPLETED)
            if output.done():
                status, why = output.result()
            else:
                output.cancel()
                with contextlib.suppress(Exception):  # gone already: detached all the same
                    await session.detach()
                status, why = 0, f"detached from {sandbox}/{session.name}"
            if why != "exited":  # said while raw, so that \r\n stays \r\n
                _write(out, f"\r\n[{why}: sandkit attach {sandbox} {session.name}]\r\n".encode())
            return 1 if status is None else status
        finally:
            for task in (typing, output, leaving, watcher):
                if task is not None:
                    task.cancel()
            if raw:
                loop.remove_signal_handler(signal.SIGWINCH)


async def _type(
    session: Session,
    keys: KeyReader,
    fd: int,
    leave: asyncio.Event,
    prompt: ApprovalPrompt | None,
) -> None:
    """Keys to the session; what follows the escape key to sandkit."""
    async for data in read_input(fd):
        if not data:  # no more input (a pipe ended): the session keeps its stdin open
            if rest := keys.flush():
                await session.input(rest)
            return
        typed, commands = keys.feed(data)
        if typed:
            await session.input(typed)
        for command in commands:
            if command is Command.DETACH:
                leave.set()
                return
            if prompt is not None:
                prompt.command(command)


async def _show(session: Session, out: BinaryIO) -> tuple[int | None, str]:
    """Output until the end: (exit status, "exited") or (None, why this client was detached)."""
    while True:
        event = await session.next()
        if event.event == "session-output":
            _write(out, base64.b64decode(event.data))
        elif event.event == "session-exit":
            return exit_status(event.code, event.signal), "exited"
        else:
            return None, f"detached: {event.why}"


async def follow(session: Session, out: BinaryIO, *, until_exit: bool) -> None:
    """``logs``: the scrollback, then (with ``until_exit``) the output until the session ends."""
    _write(out, session.screen)
    while until_exit:
        event = await session.next()
        if event.event == "session-output":
            _write(out, base64.b64decode(event.data))
        else:
            return


# -- exec (bound to this client) --------------------------------------------------------------
async def run_exec(remote: RemoteExec, *, fd: int, pty: bool, stdin: bool) -> int:
    """Output to this terminal until the exit; ConnectionLost (a SandkitError) if the
    supervisor goes away first. Without a terminal, signals sent to us are passed on."""
    loop = asyncio.get_running_loop()

    async def pump() -> None:
        async for data in read_input(fd):
            await remote.stdin(data, eof=not data)

    def resized() -> None:
        spawn(remote.resize(*terminal_size(fd)), "resize")

    def passed_on(sig: int) -> None:
        spawn(remote.signal(sig), f"signal-{sig}")

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    with raw_mode(fd) if pty else contextlib.nullcontext(False) as raw:
        if raw:
            loop.add_signal_handler(signal.SIGWINCH, resized)
        else:
            for sig in forwarded:
                loop.add_signal_handler(sig, passed_on, sig)
        typing = loop.create_task(pump()) if stdin else None
        try:
            return await _drain(remote)
        finally:
            if typing is not None:
                typing.cancel()
            for sig in (signal.SIGWINCH,) if raw else forwarded:
                loop.remove_signal_handler(sig)


async def _drain(remote: RemoteExec) -> int:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    while True:
        event = await remote.next()
        if event.event == "exit":
            return exit_status(event.code, event.signal)
        _write(out if event.stream == "stdout" else err, base64.b64decode(event.data))
