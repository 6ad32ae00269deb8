"""The supervisor's control protocol: JSON lines on a unix socket.

    request   {"id": 1, "method": "exec", "params": {...}}
    reply     {"id": 1, "result": {...}}  or  {"id": 1, "error": "message"}
    event     {"event": "output", "exec": 7, "stream": "stdout", "data": "<base64>"}
              {"event": "exit", "exec": 7, "code": 0}   ("signal": N instead of "code")

Methods: ping, guest-ping (through the guest agent), dump-memory (into the sandbox's
directory, for audits), status, exec (argv, env, cwd, user, pty, rows, cols, stdin), stdin (exec,
data, eof), resize (exec, rows, cols), signal (exec, signal), stop."""

from __future__ import annotations

import json
from typing import Any

METHODS = (
    "ping",
    "guest-ping",
    "dump-memory",
    "status",
    "exec",
    "stdin",
    "resize",
    "signal",
    "stop",
)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"
