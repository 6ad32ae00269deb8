"""sandkit's keys in an attached terminal, behind one escape key (as ssh's ``~.``, tmux's
prefix): every other byte belongs to the session, so a question on the screen never eats
what the user types for the agent.

    Ctrl-\\ Ctrl-\\  or  Ctrl-\\ d   detach (the session keeps running)
    Ctrl-\\ o                       allow the host asked about, this once
    Ctrl-\\ a                       allow it for this sandbox
    Ctrl-\\ n                       deny it
    Ctrl-\\ then any other key      both keys go to the session (Ctrl-\\ alone is SIGQUIT)

Pure: bytes in, (bytes for the session, commands) out; the escape may end one read and its
key start the next."""

from __future__ import annotations

import enum

ESCAPE = 0x1C  # Ctrl-\ : rarely typed on purpose, and never inside an escape sequence
HELP = "Ctrl-\\ Ctrl-\\ detaches; with a question shown, Ctrl-\\ then o (once), a (always), n (no)"


class Command(enum.Enum):
    DETACH = "detach"
    ALLOW_ONCE = "allow-once"
    ALLOW_ALWAYS = "allow-always"
    DENY = "deny"


_AFTER_ESCAPE = {
    ESCAPE: Command.DETACH,
    ord("d"): Command.DETACH,
    ord("o"): Command.ALLOW_ONCE,
    ord("a"): Command.ALLOW_ALWAYS,
    ord("n"): Command.DENY,
}


class KeyReader:
    def __init__(self) -> None:
        self.escaped = False  # the last byte seen was the escape key

    def feed(self, data: bytes) -> tuple[bytes, list[Command]]:
        out = bytearray()
        commands: list[Command] = []
        for byte in data:
            if self.escaped:
                self.escaped = False
                command = _AFTER_ESCAPE.get(byte if byte == ESCAPE else byte | 0x20)
                if command is None:
                    out += bytes((ESCAPE, byte))
                else:
                    commands.append(command)
            elif byte == ESCAPE:
                self.escaped = True
            else:
                out.append(byte)
        return bytes(out), commands

    def flush(self) -> bytes:
        """At end of input: a lone escape key is the session's after all."""
        if self.escaped:
            self.escaped = False
            return bytes((ESCAPE,))
        return b""
