"""The JSON-lines core under the guest channel and the supervisor client (sandkit.rpc),
and the supervisor client on it, against a peer on the other end of a socket pair."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sandkit.rpc import Connection, ConnectionLost, exit_status
from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.protocol import ErrorCode, ExitEvent, OutputEvent
from sandkit.sandbox.remote import SupervisorError
from sandkit.tasks import spawn

GUARD = 30  # seconds: a hang fails the test instead of the run


class Peer:
    """The other end: reads what the connection sends, writes what the test says."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def receive(self) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.reader.readline(), GUARD))
        assert isinstance(message, dict)
        return message

    async def send(self, *messages: dict[str, Any] | bytes) -> None:
        for m in messages:
            self.writer.write(m if isinstance(m, bytes) else json.dumps(m).encode() + b"\n")
        await self.writer.drain()


Pair = Callable[..., Awaitable[tuple[Connection, Peer]]]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """A Connection (options as given) and the peer at the other end of a socket pair."""
    made: list[tuple[Connection, Peer]] = []

    async def make(**options: Any) -> tuple[Connection, Peer]:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=1 << 16)
        connection = Connection(reader, writer, **options)
        connection.start()
        made.append((connection, Peer(*await asyncio.open_unix_connection(sock=theirs))))
        return made[-1]

    yield make
    for connection, peer in made:
        await connection.aclose()
        peer.writer.close()
        with contextlib.suppress(ConnectionError):
            await peer.writer.wait_closed()


@pytest.fixture
async def conn(pair: Pair) -> tuple[Connection, Peer]:
    return await pair()


def test_exit_status_is_the_code_or_128_plus_the_signal() -> None:
    assert [exit_status(0, None), exit_status(3, None), exit_status(None, 9)] == [0, 3, 137]
    assert exit_status(None, None) == 128


async def test_sends_are_whole_lines_in_order_and_replies_reach_their_request(
    conn: tuple[Connection, Peer],
) -> None:
    connection, peer = conn
    big = "x" * 20000  # larger than a socket write: interleaved sends would mix lines
    asked = [spawn(connection.request(i, {"id": i, "pad": big}), f"ask-{i}") for i in range(20)]
    seen = [await peer.receive() for _ in range(20)]
    assert sorted(m["id"] for m in seen) == list(range(20))
    assert all(m["pad"] == big for m in seen)
    for i in reversed(range(20)):  # answered in any order: each gets its own
        await peer.send({"id": i, "answer": i * 2})
    assert [(await a)["answer"] for a in asked] == [i * 2 for i in range(20)]


async def test_one_key_s_messages_arrive_in_order_and_unknown_ones_are_dropped(
    conn: tuple[Connection, Peer],
) -> None:
    connection, peer = conn
    inbox = connection.open(5)
    await peer.send(*[{"id": 5, "n": n} for n in range(100)], {"id": 6, "n": "nobody asked"})
    await peer.send({"event": "hello"})  # no id: unsolicited
    assert [(await inbox.get())["n"] for _ in range(100)] == list(range(100))
    assert await asyncio.wait_for(connection.events.get(), GUARD) == {"event": "hello"}
    assert inbox.held == 0


async def test_garbage_lines_are_skipped(conn: tuple[Connection, Peer]) -> None:
    connection, peer = conn
    inbox = connection.open(1)
    await peer.send(b"\xff not json\n", b"[1]\n", b'"text"\n', b"\n", {"id": 1, "ok": True})
    assert await asyncio.wait_for(inbox.get(), GUARD) == {"id": 1, "ok": True}
    assert not connection.closed.is_set()


async def test_events_before_the_reply_that_names_their_stream_wait_for_it(pair: Pair) -> None:
    connection, peer = await pair(
        key=lambda m: ("exec", m["exec"]) if "exec" in m else m.get("id"),
        final=lambda m: m.get("event") == "exit",
        early=lambda m: "exec" in m,
    )
    # The exec's output and exit overtake the reply that says which exec it is.
    await peer.send(
        {"event": "output", "exec": 7, "n": 1},
        {"event": "exit", "exec": 7, "code": 0},
        {"event": "output", "exec": 8, "n": 1},
        {"id": 1, "result": {"exec": 7}},
    )
    reply = await asyncio.wait_for(connection.request(1, {"id": 1}), GUARD)
    assert reply["result"] == {"exec": 7}
    inbox = connection.open(("exec", reply["result"]["exec"]))
    assert [await inbox.get() for _ in range(2)] == [
        {"event": "output", "exec": 7, "n": 1},
        {"event": "exit", "exec": 7, "code": 0},
    ]
    assert inbox.ended
    eight = connection.open(("exec", 8))  # still open: its exit has not come
    assert (await eight.get())["n"] == 1
    await peer.send({"event": "output", "exec": 8, "n": 2})
    assert (await asyncio.wait_for(eight.get(), GUARD))["n"] == 2


async def test_a_full_inbox_stops_the_reader_until_its_consumer_takes_some(
    conn: tuple[Connection, Peer],
) -> None:
    connection, peer = conn
    slow, other = connection.open(1, limit=1000), connection.open(2)
    await peer.send(*[{"id": 1, "pad": "x" * 400} for _ in range(4)], {"id": 2})
    async with asyncio.timeout(GUARD):
        while not slow.full:
            await asyncio.sleep(0.001)
    await asyncio.sleep(0)
    assert other.held == 0  # the reader waits: the line for 2 is not read yet
    for _ in range(4):
        await asyncio.wait_for(slow.get(), GUARD)
    assert await asyncio.wait_for(other.get(), GUARD) == {"id": 2}


async def test_the_peer_closing_fails_every_waiting_request_after_what_it_holds(
    conn: tuple[Connection, Peer],
) -> None:
    connection, peer = conn
    streaming = connection.open(1)
    asked = spawn(connection.request(2, {"id": 2}), "ask")
    await peer.receive()
    await peer.send({"id": 1, "n": 1})
    peer.writer.close()
    assert (await asyncio.wait_for(streaming.get(), GUARD))["n"] == 1  # held: still given
    with pytest.raises(ConnectionLost, match="closed the connection"):
        await asyncio.wait_for(streaming.get(), GUARD)
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(asked, GUARD)
    with pytest.raises(ConnectionLost):
        await connection.events.get()
    with pytest.raises(ConnectionLost):
        await connection.send({"id": 3})
    with pytest.raises(ConnectionLost):  # opened after the end: lost at once
        await connection.open(4).get()


async def test_closing_our_end_fails_waiters_and_stops_the_reader(
    conn: tuple[Connection, Peer],
) -> None:
    connection, _ = conn
    asked = spawn(connection.request(1, {"id": 1}), "ask")
    await asyncio.sleep(0)
    await connection.aclose()
    with pytest.raises(ConnectionLost, match="was closed"):
        await asyncio.wait_for(asked, GUARD)
    assert connection.closed.is_set()


async def test_a_line_over_the_bound_ends_the_connection(pair: Pair) -> None:
    connection, peer = await pair(line_limit=1000)
    waiting = connection.open(1)
    await peer.send({"id": 1, "pad": "x" * 900})  # under the bound
    assert len((await asyncio.wait_for(waiting.get(), GUARD))["pad"]) == 900
    await peer.send({"id": 1, "pad": "x" * 1000})
    with pytest.raises(ConnectionLost, match="line over"):
        await asyncio.wait_for(waiting.get(), GUARD)
    # Past the stream's own limit (no newline in sight) too.
    connection, peer = await pair()
    waiting = connection.open(1)
    peer.writer.write(b"x" * (1 << 17))
    with pytest.raises(ConnectionLost, match="line over"):
        await asyncio.wait_for(waiting.get(), GUARD)


# -- the supervisor client on the core ------------------------------------------------------
Handler = Callable[[dict[str, Any], Peer], Awaitable[None]]


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Callable[[Handler], Awaitable[Path]]]:
    """A stand-in supervisor: a unix socket whose requests go to the test's handler."""
    servers: list[asyncio.Server] = []

    async def serve(handler: Handler) -> Path:
        path = tmp_path / "control.sock"

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = Peer(reader, writer)
            while line := await reader.readline():
                await handler(json.loads(line), peer)
            writer.close()

        servers.append(await asyncio.start_unix_server(client, str(path)))
        return path

    yield serve
    for server in servers:
        server.close()


async def test_typed_methods_errors_and_the_old_error_form(
    supervisor: Callable[[Handler], Awaitable[Path]],
) -> None:
    calls: list[dict[str, Any]] = []

    async def handler(request: dict[str, Any], peer: Peer) -> None:
        calls.append(request)
        rid, method = request["id"], request["method"]
        if method == "approve":
            await peer.send({"id": rid, "result": {"answered": 2, "remembered": True, "new": 1}})
        elif method == "deny":  # a supervisor of PROTOCOL 1: the error is a bare string
            await peer.send({"id": rid, "error": "'a b' is not a host name"})
        elif method == "sync-status":
            await peer.send({"id": rid, "error": {"code": "not-found", "message": "no sync"}})
        elif method == "pending":
            await peer.send({"id": rid, "result": {"held": [{"id": 1, "host": "h"}]}})

    async with await SupervisorClient.connect(await supervisor(handler)) as client:
        answered = await client.approve("example.com", remember=True)
        assert (answered.answered, answered.remembered) == (2, True)
        with pytest.raises(SupervisorError) as old:
            await client.deny("a b")
        assert (old.value.code, str(old.value)) == (ErrorCode.FAILED, "'a b' is not a host name")
        with pytest.raises(SupervisorError) as new:
            await client.sync_status()
        assert (new.value.code, new.value.message) == (ErrorCode.NOT_FOUND, "no sync")
        with pytest.raises(SupervisorError) as wrong:  # fields missing: another version?
            await client.pending()
        assert wrong.value.code == ErrorCode.FOREIGN_VERSION
        with pytest.raises(SupervisorError) as refused:  # checked before it is sent
            await client.exec([], rows=0)
        assert refused.value.code == ErrorCode.BAD_REQUEST
        assert "argv" in refused.value.message and "rows" in refused.value.message
        assert [c["method"] for c in calls] == ["approve", "deny", "sync-status", "pending"]
    assert client.connection.closed.is_set()
    assert calls[0] == {
        "id": 1,
        "method": "approve",
        "params": {"host": "example.com", "remember": True},
    }


async def test_exec_events_that_overtake_the_reply_are_kept_and_a_lost_supervisor_ends_them(
    supervisor: Callable[[Handler], Awaitable[Path]],
) -> None:
    async def handler(request: dict[str, Any], peer: Peer) -> None:
        if request["method"] == "exec":
            await peer.send(
                {"event": "output", "exec": 4, "stream": "stdout", "data": "aGk="},
                {"event": "exit", "exec": 4, "signal": 15},
                {"id": request["id"], "result": {"exec": 4}},
                {"event": "approval", "id": 9, "host": "h", "port": 443, "since": 1.0},
            )
        elif request["method"] == "exec-and-go":
            peer.writer.close()

    async with await SupervisorClient.connect(await supervisor(handler)) as client:
        remote = await client.exec(["sh"], pty=True)
        output = await asyncio.wait_for(remote.next(), GUARD)
        assert isinstance(output, OutputEvent) and output.data == "aGk="
        end = await asyncio.wait_for(remote.next(), GUARD)
        assert isinstance(end, ExitEvent) and exit_status(end.code, end.signal) == 143
        events = client.events()
        assert (await anext(events))["host"] == "h"  # an approval: its id is not a request's
        with pytest.raises(ConnectionLost):
            await client.call("exec-and-go")
        assert [e async for e in events] == []  # ends with the connection
