"""Approvals a person gives through the control socket, and the ones remembered with the
sandbox (approvals.json: exact hosts only, never a wildcard)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.fsio import write_atomic
from sandkit.logs import logger
from sandkit.net.actions import Action
from sandkit.net.approvals import exact_host
from sandkit.sandbox.protocol import AnswerResult, ControlError, ErrorCode
from sandkit.sandbox.supervisor import egress

if TYPE_CHECKING:
    from sandkit.sandbox.supervisor.process import Supervisor

log = logger("sandkit.supervisor")
FILE = "approvals.json"


def load_approvals(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    approvals = {}
    for key, value in data.items():
        try:  # a file written by an older sandkit may hold wildcards: they are dropped
            host = exact_host(str(key), port=True)
        except ValueError:
            log.warning("ignoring the remembered approval %r: not one host", key)
            continue
        if value in ("allow", "deny"):
            approvals[host] = str(value)
    return approvals


def answer(sup: Supervisor, host: str, action: Action, remember: bool) -> AnswerResult:
    host = host.strip().lower()
    if not host or any(c in host for c in "/ @"):
        raise ControlError(
            ErrorCode.BAD_REQUEST, f"'{host}' is not a host name (e.g. api.example.com)"
        )
    if remember:  # checked before anything is let through: one host, never a wildcard
        try:
            host = exact_host(host, port=True)
        except ValueError as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
    answered = sup.approvals.answer(action, host=host)
    if remember:
        egress.remember(sup, host, action)
        stored = {**load_approvals(sup.sandbox.dir), host: str(action)}
        data = json.dumps(stored, indent=2, sort_keys=True).encode()
        write_atomic(sup.sandbox.dir / FILE, data)
    return AnswerResult(answered=len(answered), remembered=remember)
