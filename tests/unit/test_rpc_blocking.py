"""rpc.LineSocket: the JSON-lines framing over a blocking socket (`sandkit exec`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from sandkit.rpc import ConnectionLost, LineSocket


@pytest.fixture
def pair() -> Iterator[tuple[LineSocket, socket.socket]]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        yield LineSocket(ours, line_limit=64), theirs


def test_messages_are_whole_lines_in_order_and_non_objects_are_skipped(
    pair: tuple[LineSocket, socket.socket],
) -> None:
    line, peer = pair
    peer.sendall(b'{"a": 1}\nnot json\n[1, 2]\n{"b"')
    assert line.receive() == [{"a": 1}]  # the half line waits for the rest
    peer.sendall(b": 2}\n")
    assert line.receive() == [{"b": 2}]
    line.send({"id": 1, "method": "ping"})
    assert peer.recv(100) == b'{"id":1,"method":"ping"}\n'


def test_a_line_over_the_limit_ends_the_connection(pair: tuple[LineSocket, socket.socket]) -> None:
    line, peer = pair
    peer.sendall(b'{"x": "' + b"y" * 64 + b'"}\n')
    with pytest.raises(ConnectionLost, match="over 64 bytes"):
        line.receive()


def test_an_endless_line_ends_the_connection(pair: tuple[LineSocket, socket.socket]) -> None:
    line, peer = pair
    peer.sendall(b"z" * 65)  # no newline yet, already over the limit
    with pytest.raises(ConnectionLost, match="over 64 bytes"):
        line.receive()


def test_the_other_end_closing_is_a_lost_connection(
    pair: tuple[LineSocket, socket.socket],
) -> None:
    line, peer = pair
    peer.sendall(b'{"a": 1}\n')
    peer.shutdown(socket.SHUT_WR)
    assert line.receive() == [{"a": 1}]
    with pytest.raises(ConnectionLost, match="closed"):
        line.receive()
