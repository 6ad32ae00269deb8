"""The supervisor's control protocol: JSON lines on a unix socket.

    request   {"id": 1, "method": "exec", "params": {...}}
    reply     {"id": 1, "result": {...}}  or  {"id": 1, "error": "message"}
    event     {"event": "output", "exec": 7, "stream": "stdout", "data": "<base64>"}
              {"event": "exit", "exec": 7, "code": 0}   ("signal": N instead of "code")
              {"event": "approval", "id": 3, "host": "h", "port": 443, "since": T}   (after watch)
              {"event": "approval-done", "id": 3, "host": "h", "action": "allow|deny|timeout"}

Methods: ping, guest-ping (through the guest agent), dump-memory (into the sandbox's
directory, for audits), status, exec (argv, env, cwd, user, pty, rows, cols, stdin), stdin (exec,
data, eof), resize (exec, rows, cols), signal (exec, signal), stop, sync-approve, sync-reject,
sync-status, watch (this connection then gets approval events), approve and deny (host,
remember: also for later requests, kept with the sandbox), pending (the held requests)."""

from __future__ import annotations

import json
from typing import Any


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"
