"""The escape key of an attached terminal: what reaches the session, what sandkit takes."""

from __future__ import annotations

import pytest

from sandkit.cli.keys import ESCAPE, Command, KeyReader

E = bytes((ESCAPE,))


def test_plain_typing_passes_through_untouched() -> None:
    keys = KeyReader()
    assert keys.feed(b"echo hi; do it now\r") == (b"echo hi; do it now\r", [])
    assert keys.feed(b"\x03\x1b[A") == (b"\x03\x1b[A", [])


@pytest.mark.parametrize(
    ("key", "command"),
    [
        (E, Command.DETACH),
        (b"d", Command.DETACH),
        (b"D", Command.DETACH),
        (b"o", Command.ALLOW_ONCE),
        (b"O", Command.ALLOW_ONCE),
        (b"a", Command.ALLOW_ALWAYS),
        (b"n", Command.DENY),
        (b"N", Command.DENY),
    ],
)
def test_escape_then_a_command_key(key: bytes, command: Command) -> None:
    assert KeyReader().feed(b"ls" + E + key + b"x") == (b"lsx", [command])


@pytest.mark.parametrize("key", [b"x", b"y", b"\r", b" ", b"\x0f", b"\x04", b"\x0e"])
def test_escape_then_another_key_sends_both(key: bytes) -> None:
    assert KeyReader().feed(E + key) == (E + key, [])


def test_the_escape_may_end_one_read_and_its_key_start_the_next() -> None:
    keys = KeyReader()
    assert keys.feed(b"ab" + E) == (b"ab", [])
    assert keys.feed(b"o") == (b"", [Command.ALLOW_ONCE])
    assert keys.feed(E) == (b"", [])
    assert keys.feed(b"z") == (E + b"z", [])


def test_several_commands_in_one_read() -> None:
    assert KeyReader().feed(E + b"n" + b"q" + E + E) == (b"q", [Command.DENY, Command.DETACH])


def test_flush_gives_back_a_lone_escape() -> None:
    keys = KeyReader()
    keys.feed(E)
    assert keys.flush() == E
    assert keys.flush() == b""
    assert keys.feed(b"o") == (b"o", [])  # the escape is spent
