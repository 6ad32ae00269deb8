"""The supervisor's control protocol: JSON lines on the sandbox's unix socket.

    request   {"id": 1, "method": "exec", "params": {...}}
    reply     {"id": 1, "result": {...}}
              {"id": 1, "error": {"code": "bad-request", "message": "..."}}
    event     {"event": "output", "exec": 7, "stream": "stdout", "data": "<base64>"}
              {"event": "exit", "exec": 7, "code": 0}   ("signal": N instead of "code")
              {"event": "approval", "id": 3, "host": "h", "port": 443, "since": T}   (after watch)
              {"event": "approval-done", "id": 3, "host": "h", "action": "allow|deny|timeout"}
              {"event": "sync-held", "kind": "deletions-held|protected-held", "paths": [...]}

Every method has a params model and a result model (``METHODS``); params are validated
(unknown fields refused: a ``bad-request``), results are the models' JSON. An error's
``code`` is an ``ErrorCode``, for programs; its ``message`` is for a person. A supervisor
of PROTOCOL 1 (before this module had models) answered errors as a bare string:
``{"id": 1, "error": "message"}``; clients read both.

Versions: ``ping`` and ``status`` answer the supervisor's ``Identity`` (sandkit version,
PROTOCOL, interpreter and installation prefix), which state.json records too. A client
only adopts a pool member whose identity is its own (``Identity.same_as``); a running
sandbox of another version keeps answering the methods both know.

Methods (params → result):
    ping                                              → PingResult
    status                                            → StatusResult
    guest-ping   (a round trip through the guest agent) → Empty
    dump-memory  (into the sandbox's folder, for audits) → DumpMemoryResult
    credentials-changed  CredentialsChangedParams (secrets, host variables) → CredentialsChangedResult
    exec         ExecParams                           → ExecResult  (then output/exit events)
    stdin        StdinParams                          → Empty
    resize       ResizeParams                         → Empty
    signal       SignalParams                         → Empty
    stop                                              → Empty  (the stop goes on after the reply)
    sync-status                                       → SyncStatusResult
    sync-approve, sync-reject                         → CountResult
    watch        (this connection then gets approval and sync-held events) → Empty
    approve, deny  AnswerParams  (remember: also later, kept with the sandbox) → AnswerResult
    pending                                           → PendingResult  (the held requests)
    adopt        AdoptParams  (pool members only)     → AdoptResult
    agent-argv   AgentArgvParams                      → AgentArgvResult
    sessions                                          → SessionsResult
    session-start  SessionStartParams (attach: this connection gets its output) → SessionAttached
    session-attach SessionAttachParams (the screen so far, then session events) → SessionAttached
    session-detach, session-stop  SessionParams       → Empty
    session-input  SessionInputParams                 → Empty
    session-resize SessionResizeParams                → Empty
    ports                                             → PortsResult
    publish        PublishParams                      → PortsResult
    unpublish      UnpublishParams                    → PortsResult

Session events (to the connections attached to it):
              {"event": "session-output", "session": "agent", "stream": "stdout", "data": "<b64>"}
              {"event": "session-exit", "session": "agent", "code": 0, "signal": null}
              {"event": "session-detached", "session": "agent", "why": "..."}  (fell behind)
and to watchers: {"event": "port-listening", "port": 8000}  (a new guest listener)
"""

from __future__ import annotations

import base64
import binascii
import sys
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandkit.rpc import encode as encode
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.warm import sandkit_version as sandkit_version  # the one rule, light

# The light half, re-exported: a one-shot client (cli/execute.py) imports only that.
from sandkit.sandbox.wire import PROTOCOL as PROTOCOL
from sandkit.sandbox.wire import ControlError as ControlError
from sandkit.sandbox.wire import ErrorBody as ErrorBody
from sandkit.sandbox.wire import ErrorCode as ErrorCode
from sandkit.sandbox.wire import error_of as error_of


# -- models ---------------------------------------------------------------------------------
class Params(BaseModel):
    """A method's params: unknown fields are a bad request, not silently dropped."""

    # defer_build: a model's validator is built on its first use, not at import (every
    # CLI command imports this module, and uses one or two of its models).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Result(BaseModel):
    """A method's result: a client ignores fields a newer supervisor adds."""

    model_config = ConfigDict(extra="ignore", defer_build=True)


class Empty(Params):
    pass


class EmptyResult(Result):
    pass


class Identity(Result):
    """Which sandkit a supervisor runs: a pool member is adopted only by its own kind."""

    sandkit: str
    protocol: int
    executable: str
    prefix: str  # sys.prefix: the venv or installation it imports sandkit from

    @classmethod
    def local(cls) -> Identity:
        return cls(
            sandkit=sandkit_version(),
            protocol=PROTOCOL,
            executable=sys.executable,
            prefix=sys.prefix,
        )

    def same_as(self, other: Identity) -> bool:
        return (self.sandkit, self.protocol, self.prefix) == (
            other.sandkit,
            other.protocol,
            other.prefix,
        )

    def describe(self) -> str:
        return f"sandkit {self.sandkit} (protocol {self.protocol}) in {self.prefix}"


class PingResult(Identity):
    # A PROTOCOL 1 supervisor (a sandbox started by an older sandkit) answered {}.
    sandkit: str = "unknown"
    protocol: int = 1
    executable: str = ""
    prefix: str = ""
    pid: int | None = None


class StatusResult(Identity):
    sandkit: str = "unknown"  # as for PingResult: absent from PROTOCOL 1 answers
    protocol: int = 1
    executable: str = ""
    prefix: str = ""
    state: SandboxState
    qemu_pid: int | None = None
    sync: str | None = None  # the sync engine's status text, when there is a workspace
    error: str | None = None


class DumpMemoryResult(Result):
    path: str


class CredentialsChangedParams(Params):
    """The host's secrets changed (`secret set|rm`): the proxy reads them again. A client
    that starts or adopts a sandbox hands over the host variables its kits' credentials
    name (``environ``), held in the supervisor's memory only; None keeps what it has."""

    environ: dict[str, str] | None = None


class CredentialsChangedResult(Result):
    services: list[str] = []  # the credentials that have a value now


class _Program(Params):
    """What starts a program in the guest (an exec, a session)."""

    argv: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    user: str = "root"
    pty: bool = False
    rows: int = Field(default=24, ge=1, le=10000)
    cols: int = Field(default=80, ge=1, le=10000)


class ExecParams(_Program):
    stdin: bool = False  # the exec reads stdin (from stdin calls) rather than /dev/null


class ExecResult(Result):
    exec: int


class _Input(Params):
    """Bytes for a program's stdin (base64), and whether it ends there."""

    data: str = ""
    eof: bool = False

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("data is not base64") from None
        return value

    def raw(self) -> bytes:
        return base64.b64decode(self.data)


class StdinParams(_Input):
    exec: int


class ResizeParams(Params):
    exec: int
    rows: int = Field(ge=1, le=10000)
    cols: int = Field(ge=1, le=10000)


class SignalParams(Params):
    exec: int
    signal: int = Field(ge=1, le=64)


class HeldPath(Result):
    path: str
    why: str
    diff: str | None = None  # for held edits of protected files


class SyncStatusResult(Result):
    status: str  # for a person: "in sync", "paused", "in sync, 2 link(s) refused", ...
    held: list[str]
    details: list[HeldPath]
    refused_links: dict[str, str]
    conflicts: list[str]


class CountResult(Result):
    count: int


class AnswerParams(Params):
    host: str  # HOST or HOST:PORT; with remember, exactly one host, never a wildcard
    remember: bool = False


class AnswerResult(Result):
    answered: int
    remembered: bool


class HeldRequest(Result):
    id: int
    host: str
    port: int
    since: float


class PendingResult(Result):
    held: list[HeldRequest]


class AdoptParams(Params):
    name: str
    config: dict[str, Any]  # the new sandbox's store.Config, as JSON
    # The adopter's identity: a member of another kind refuses (foreign-version). Absent
    # from PROTOCOL 1 adopters.
    identity: Identity | None = None
    # The adopter's host variables that its kits' credentials name (as credentials-changed
    # hands over), taken before the proxy is built: no second request after adoption.
    environ: dict[str, str] | None = None


class AdoptResult(Result):
    member: str
    seconds: float


class AgentArgvParams(Params):
    extra: list[str] = Field(default_factory=list)
    interactive: bool = False
    # A session verb (kits/agent_sessions.py Verb) and the values of its placeholders.
    verb: Literal["prompt", "resume", "continue", "new", "picker"] | None = None
    prompt: str | None = None
    session_id: str | None = None


class AgentArgvResult(Result):
    argv: list[str]


# -- sessions: programs owned by the supervisor, which clients attach to ---------------------
class SessionStartParams(_Program):
    name: str | None = None  # None: the next free number
    user: str = "agent"
    pty: bool = True
    attach: bool = True  # False: `exec -d`, nobody attached


class SessionParams(Params):
    session: str


class SessionAttachParams(Params):
    session: str
    rows: int = Field(default=24, ge=1, le=10000)
    cols: int = Field(default=80, ge=1, le=10000)
    # False: follow the output (logs -f) without taking the terminal's size
    interactive: bool = True


class SessionInputParams(_Input):
    session: str


class SessionResizeParams(Params):
    session: str
    rows: int = Field(ge=1, le=10000)
    cols: int = Field(ge=1, le=10000)


class SessionInfo(Result):
    name: str
    argv: list[str]
    user: str
    pty: bool
    started: float
    running: bool
    exit_status: int | None = None
    ended: float | None = None
    attached: int = 0


class SessionAttached(Result):
    session: SessionInfo
    screen: str = ""  # base64: the scrollback up to the moment of attaching


class SessionsResult(Result):
    sessions: list[SessionInfo]


# -- published ports -------------------------------------------------------------------------
class PortInfo(Result):
    guest: int
    host: int
    host_ip: str
    proto: str = "tcp"


class PortsResult(Result):
    ports: list[PortInfo]
    listening: list[int] = Field(default_factory=list)  # guest ports with a listener


class PublishParams(Params):
    spec: str  # [HOST_IP:][HOST_PORT:]GUEST_PORT[/tcp]


class UnpublishParams(Params):
    spec: str  # GUEST_PORT, or HOST_PORT:GUEST_PORT as published


METHODS: dict[str, tuple[type[Params], type[Result]]] = {
    "ping": (Empty, PingResult),
    "status": (Empty, StatusResult),
    "guest-ping": (Empty, EmptyResult),
    "dump-memory": (Empty, DumpMemoryResult),
    "credentials-changed": (CredentialsChangedParams, CredentialsChangedResult),
    "exec": (ExecParams, ExecResult),
    "stdin": (StdinParams, EmptyResult),
    "resize": (ResizeParams, EmptyResult),
    "signal": (SignalParams, EmptyResult),
    "stop": (Empty, EmptyResult),
    "sync-status": (Empty, SyncStatusResult),
    "sync-approve": (Empty, CountResult),
    "sync-reject": (Empty, CountResult),
    "watch": (Empty, EmptyResult),
    "approve": (AnswerParams, AnswerResult),
    "deny": (AnswerParams, AnswerResult),
    "pending": (Empty, PendingResult),
    "adopt": (AdoptParams, AdoptResult),
    "agent-argv": (AgentArgvParams, AgentArgvResult),
    "sessions": (Empty, SessionsResult),
    "session-start": (SessionStartParams, SessionAttached),
    "session-attach": (SessionAttachParams, SessionAttached),
    "session-detach": (SessionParams, EmptyResult),
    "session-stop": (SessionParams, EmptyResult),
    "session-input": (SessionInputParams, EmptyResult),
    "session-resize": (SessionResizeParams, EmptyResult),
    "ports": (Empty, PortsResult),
    "publish": (PublishParams, PortsResult),
    "unpublish": (UnpublishParams, PortsResult),
}


# -- events (no id; unchanged since PROTOCOL 1) ----------------------------------------------
class OutputEvent(Result):
    event: Literal["output"] = "output"
    exec: int
    stream: Literal["stdout", "stderr"]
    data: str  # base64


class ExitEvent(Result):
    event: Literal["exit"] = "exit"
    exec: int
    code: int | None = None
    signal: int | None = None


class ApprovalEvent(Result):
    event: Literal["approval"] = "approval"
    id: int
    host: str
    port: int
    since: float


class ApprovalDoneEvent(Result):
    event: Literal["approval-done"] = "approval-done"
    id: int
    host: str
    action: str  # allow | deny | timeout


class SyncHeldEvent(Result):
    event: Literal["sync-held"] = "sync-held"
    kind: str  # deletions-held | protected-held
    paths: list[str]


class SessionOutputEvent(Result):
    event: Literal["session-output"] = "session-output"
    session: str
    stream: Literal["stdout", "stderr"]
    data: str  # base64


class SessionExitEvent(Result):
    event: Literal["session-exit"] = "session-exit"
    session: str
    code: int | None = None
    signal: int | None = None


class SessionDetachedEvent(Result):
    event: Literal["session-detached"] = "session-detached"
    session: str
    why: str


class PortListeningEvent(Result):
    event: Literal["port-listening"] = "port-listening"
    port: int


def reply(rid: object, result: Result) -> dict[str, Any]:
    return {"id": rid, "result": result.model_dump(mode="json")}


def error_reply(rid: object, code: ErrorCode, message: str) -> dict[str, Any]:
    return {"id": rid, "error": {"code": str(code), "message": message}}
