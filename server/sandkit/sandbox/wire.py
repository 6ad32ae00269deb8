"""The control protocol's light half (sandbox/protocol.py has the pydantic models): the
protocol number, error codes and bodies, and the exec messages as a one-shot client reads
them. It imports neither pydantic nor asyncio, so that `sandkit exec` answers fast
(cli/execute.py); the supervisor still validates every request with protocol.py's models.

Events from the supervisor are checked here as strictly as protocol.py's ``OutputEvent``
and ``ExitEvent`` check them (and base64 more strictly): a malformed one is a
:class:`MalformedEvent`, never passed on."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypedDict

from sandkit.errors import SandkitError
from sandkit.sandbox.store import SandboxError

# 1: errors were bare strings, no identity; 2: typed errors, Identity; 3: sessions, ports
PROTOCOL = 3


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad-request"  # not JSON, no such method's params, a value out of range
    UNKNOWN_METHOD = "unknown-method"
    NOT_FOUND = "not-found"  # no such exec, no workspace to sync
    WRONG_STATE = "wrong-state"  # e.g. exec while the sandbox is not running
    MEMBER_TAKEN = "member-taken"  # adopt: another client won this pool member, or it stops
    FOREIGN_VERSION = "foreign-version"  # adopt: the member runs another sandkit
    FAILED = "failed"  # the operation failed; the message says why (kits, the guest)
    INTERNAL = "internal"  # a bug in the supervisor

    @classmethod
    def parse(cls, value: object) -> ErrorCode:
        try:
            return cls(str(value))
        except ValueError:
            return cls.FAILED


@dataclass(frozen=True)
class ErrorBody:
    code: ErrorCode
    message: str


def error_of(reply_error: object) -> ErrorBody:
    """An error reply's body, from this protocol or from a PROTOCOL 1 supervisor's string."""
    if isinstance(reply_error, dict):
        return ErrorBody(
            code=ErrorCode.parse(reply_error.get("code")),
            message=str(reply_error.get("message", "")),
        )
    return ErrorBody(code=ErrorCode.FAILED, message=str(reply_error))


class ControlError(SandkitError):
    """Raised by a handler in the supervisor: becomes the error reply. (The client raises
    its own error type, with the same code, from the reply.)"""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message}


class SupervisorError(SandboxError):
    """The supervisor answered a request with an error: ``code`` is for programs (an
    ``ErrorCode``), the message for a person."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


# -- exec, as a one-shot client sends and reads it --------------------------------------------
class ExecRequest(TypedDict):
    """protocol.ExecParams as JSON (the supervisor validates it with that model)."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    user: str
    pty: bool
    rows: int
    cols: int
    stdin: bool


class MalformedEvent(ValueError):
    """An event that is not what PROTOCOL says: skipped, with a warning."""


@dataclass(frozen=True)
class ExecOutput:
    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)
class ExecExit:
    code: int | None
    signal: int | None


def _int(message: dict[str, Any], field: str) -> int | None:
    value = message.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEvent(f"{field} is not an integer")
    return value


def exec_event(message: dict[str, Any]) -> ExecOutput | ExecExit | None:
    """An exec's ``output`` or ``exit`` event, checked; None for an event of another kind
    (a newer supervisor's, ignored as protocol.Result models ignore new fields)."""
    kind = message.get("event")
    if kind == "output":
        stream, data = message.get("stream"), message.get("data")
        if stream not in ("stdout", "stderr"):
            raise MalformedEvent("stream is neither stdout nor stderr")
        if not isinstance(data, str):
            raise MalformedEvent("data is not a string")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedEvent("data is not base64") from None
        return ExecOutput(stream="stdout" if stream == "stdout" else "stderr", data=raw)
    if kind == "exit":
        return ExecExit(code=_int(message, "code"), signal=_int(message, "signal"))
    return None


def exec_id(result: object) -> int:
    """The exec's id from protocol.ExecResult as JSON."""
    value = result.get("exec") if isinstance(result, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SupervisorError(
            ErrorCode.FOREIGN_VERSION,
            "the supervisor's answer to exec is not what this sandkit reads (is it another "
            "version? restart the sandbox)",
        )
    return value
