"""The language server's own messages, beyond LSP: their names and the shape of every
payload. The VS Code client mirrors this module in vscode-client/src/protocol.ts, name for
name and field for field (tests/lsp/test_protocol.py holds the two together).

Commands (``workspace/executeCommand`` with one argument, an object): ``COMMANDS`` maps
each to its parameters and its result. ``sandkit.openWorkspace`` takes its agent and kits
from the folder's .sandkit.yaml, then from the client's settings, and reports progress
with $/progress; ``sandkit.exec`` answers ``TerminalStarted`` when ``stream`` is set (the
output then arrives as terminal notifications), else ``ExecOutput``; ``sandkit.newKit``
makes the file with workspace/applyEdit.

Notifications: ``SERVER_NOTIFICATIONS`` (server -> client) and ``CLIENT_NOTIFICATIONS``
(client -> server) map each to its parameters.

- terminals: an agent or a streamed exec in an editor terminal. Output is UTF-8 text; the
  exit code is the program's, or 128+N when signal N ended it. An exec's terminal owns
  it: ``terminalClose`` hangs the program up (SIGHUP). The agent's terminal is a view of
  the sandbox's session ``agent`` (``sandkit.runAgent`` starts it or attaches to it;
  ``sandkit.attach`` attaches to any session): its output starts with the replayed
  screen, ``terminalClose`` detaches (the program runs on), and ``terminalExit`` says
  ``detached`` (true: the terminal let go, the session runs on; false: it ended).
- ``sandkit/decision``: each proxy decision of a running sandbox, live, for a log view.
- ``sandkit/sandboxes``: the rows ``sandkit.list`` answers, sent once the server is
  initialized and again whenever they change (a sandbox made, started, stopped, removed,
  its sync state, sessions or published ports changed), so that a client never polls.

Errors: a command's user error answers ``USER_ERROR`` with a message for the person;
``MISSING_CREDENTIALS`` also carries ``MissingCredentialsData`` (the services a kit
requires that have no value: the client asks for them, ``sandkit.setSecret``, and retries).
A guest port that starts listening is offered for publishing by the server itself
(window/showMessageRequest, then window/showDocument to open it in the browser).
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

OPEN_WORKSPACE = "sandkit.openWorkspace"
RUN_AGENT = "sandkit.runAgent"
EXEC = "sandkit.exec"
STOP = "sandkit.stop"
REMOVE = "sandkit.remove"
LIST = "sandkit.list"
SHOW_NETWORK_LOG = "sandkit.showNetworkLog"
VALIDATE_KIT = "sandkit.validateKit"
NEW_KIT = "sandkit.newKit"
UNDO = "sandkit.undo"
ATTACH = "sandkit.attach"
STOP_SESSION = "sandkit.stopSession"
PUBLISH_PORT = "sandkit.publish"
UNPUBLISH_PORT = "sandkit.unpublish"
SET_SECRET = "sandkit.setSecret"
AGENT_VERBS = "sandkit.agentVerbs"  # which session verbs the agent kit declares
RUN_AGENT_VERB = "sandkit.runAgentVerb"  # one of them, in a terminal

TERMINAL_OUTPUT = "sandkit/terminalOutput"
TERMINAL_EXIT = "sandkit/terminalExit"
TERMINAL_INPUT = "sandkit/terminalInput"
TERMINAL_RESIZE = "sandkit/terminalResize"
TERMINAL_CLOSE = "sandkit/terminalClose"
DECISION = "sandkit/decision"
SANDBOXES = "sandkit/sandboxes"

# Answers offered when a request waits for approval (window/showMessageRequest).
ALLOW_ONCE = "Allow once"
ALLOW_SANDBOX = "Allow for this sandbox"
ADD_TO_KIT = "Add to kit"
DENY = "Deny"
# … and when a burst of deletions in the sandbox is held by the sync guard.
PUT_BACK = "Put them back"
DELETE_TOO = "Delete on the host too"
APPLY_ON_HOST = "Apply on the host"  # held changes to files the host runs
# … and when a guest port starts listening.
PUBLISH = "Publish"
OPEN_IN_BROWSER = "Open in Browser"

USER_ERROR = -32001  # a message for the person, not a bug report
MISSING_CREDENTIALS = -32002  # with MissingCredentialsData

WORKSPACE_FILE = ".sandkit.yaml"  # per-folder defaults: agent, kits, kitArgs, default


# -- sandboxes ------------------------------------------------------------------------------
class SessionRow(TypedDict):
    name: str  # "agent": the agent's
    running: bool
    exit_status: int | None  # once ended
    attached: int  # clients attached now


class PortRow(TypedDict):
    guest: int
    host: int
    host_ip: str  # 127.0.0.1 unless published on another address


class SandboxRow(TypedDict):
    name: str
    state: str  # created | booting | running | stopping | stopped | crashed | damaged
    agent: str
    kits: list[str]
    workspace: str | None
    sync: str | None  # while running: in sync | syncing | paused | conflicts
    error: str | None
    # while running; None until its supervisor has said (a client restoring terminals waits)
    sessions: list[SessionRow] | None
    ports: list[PortRow]  # published, while running


class SandboxesParams(TypedDict):
    sandboxes: list[SandboxRow]


class NameParams(TypedDict):
    name: str


class Empty(TypedDict):
    pass


class OpenWorkspaceParams(TypedDict):
    folder: str  # a file: URI or a path
    agent: NotRequired[str]
    kits: NotRequired[list[str]]
    kitArgs: NotRequired[dict[str, str]]
    name: NotRequired[str]
    default: NotRequired[str]
    memory: NotRequired[str]
    docker: NotRequired[bool]  # a private Docker Engine (the docker kit)
    resolve: NotRequired[dict[str, str]]
    upstreamCa: NotRequired[str]


class OpenWorkspaceResult(TypedDict):
    name: str
    state: str
    created: bool


class RemoveParams(TypedDict):
    name: str
    force: NotRequired[bool]


class UndoParams(TypedDict):
    name: str
    paths: NotRequired[list[str]]
    last: NotRequired[bool]


class UndoResult(TypedDict):
    restored: list[str]


class SetSecretParams(TypedDict):
    service: str
    value: str
    sandbox: NotRequired[str]  # that sandbox's own secret; else everyone's (the global store)


class MissingCredentialsData(TypedDict):
    services: list[str]


# -- terminals ------------------------------------------------------------------------------
class RunAgentParams(TypedDict):
    name: str
    args: NotRequired[list[str]]
    rows: NotRequired[int]
    cols: NotRequired[int]


class ExecParams(TypedDict):
    name: str
    argv: list[str]
    user: NotRequired[str]
    cwd: NotRequired[str]
    env: NotRequired[dict[str, str]]
    pty: NotRequired[bool]
    rows: NotRequired[int]
    cols: NotRequired[int]
    stream: NotRequired[bool]


class AttachParams(TypedDict):
    name: str
    session: str
    rows: NotRequired[int]
    cols: NotRequired[int]


class SessionParams(TypedDict):
    name: str
    session: NotRequired[str]  # the agent's when not named


class PortParams(TypedDict):
    name: str
    spec: str  # publish: [HOST_PORT:]GUEST_PORT; unpublish: GUEST_PORT


class PortsResult(TypedDict):
    ports: list[PortRow]


class TerminalStarted(TypedDict):
    terminal: int


class ExecOutput(TypedDict):
    code: int
    stdout: str
    stderr: str


class TerminalOutputParams(TypedDict):
    terminal: int
    data: str


class TerminalExitParams(TypedDict):
    terminal: int
    code: int
    detached: NotRequired[bool]  # a session's terminal: let go (true) or the program ended


class TerminalInputParams(TypedDict):
    terminal: int
    data: str
    eof: NotRequired[bool]


class TerminalResizeParams(TypedDict):
    terminal: int
    rows: int
    cols: int


class TerminalCloseParams(TypedDict):
    terminal: int


# -- network decisions ----------------------------------------------------------------------
class DecisionRecord(TypedDict):
    """One line of a sandbox's decisions.jsonl (sandkit.net.decisions.Decision)."""

    sandbox: str
    method: str
    scheme: str  # http | https (intercepted) | tunnel
    host: str
    port: int
    action: Literal["allowed", "blocked"]
    reason: str
    path: str | None
    rule: str | None
    origin: str | None  # the deciding rule's kit (file:line:col)
    credentials: list[str]  # service names, never values
    status: int | None
    bytes_up: int
    bytes_down: int
    latency_ms: float
    warnings: list[str]
    time: str


class DecisionParams(TypedDict):
    sandbox: str
    record: DecisionRecord


class ShowNetworkLogParams(TypedDict):
    name: str
    limit: NotRequired[int]


# -- kits -----------------------------------------------------------------------------------
class IssueRange(TypedDict):
    start: list[int]  # [line, column], 0-based as in LSP
    end: list[int]


class KitIssue(TypedDict):
    file: str
    range: IssueRange
    severity: str
    code: str
    message: str


class ValidateKitParams(TypedDict):
    uri: NotRequired[str]  # an open document (its unsaved text), or
    path: NotRequired[str]  # a kit on disk


class ValidateKitResult(TypedDict):
    valid: bool
    issues: list[KitIssue]


class NewKitParams(TypedDict):
    folder: str
    name: NotRequired[str]
    kind: NotRequired[Literal["mixin", "sandbox"]]


class NewKitResult(TypedDict):
    uri: str


class AgentVerbsResult(TypedDict):
    kit: str  # the agent kit's name, for the messages
    verbs: list[Literal["prompt", "continue", "resume"]]  # declared, for a terminal


class RunAgentVerbParams(TypedDict):
    name: str
    verb: Literal["prompt", "continue", "resume"]
    prompt: NotRequired[str]  # the prompt verb's text
    sessionId: NotRequired[str]  # the resume verb's session id
    rows: NotRequired[int]
    cols: NotRequired[int]


COMMANDS: dict[str, tuple[object, object]] = {  # name: (params, result or results)
    OPEN_WORKSPACE: (OpenWorkspaceParams, OpenWorkspaceResult),
    RUN_AGENT: (RunAgentParams, TerminalStarted),
    EXEC: (ExecParams, (TerminalStarted, ExecOutput)),
    STOP: (NameParams, Empty),
    REMOVE: (RemoveParams, Empty),
    LIST: (Empty, list[SandboxRow]),
    SHOW_NETWORK_LOG: (ShowNetworkLogParams, list[DecisionRecord]),
    VALIDATE_KIT: (ValidateKitParams, ValidateKitResult),
    NEW_KIT: (NewKitParams, NewKitResult),
    UNDO: (UndoParams, UndoResult),
    ATTACH: (AttachParams, TerminalStarted),
    STOP_SESSION: (SessionParams, Empty),
    PUBLISH_PORT: (PortParams, PortsResult),
    UNPUBLISH_PORT: (PortParams, PortsResult),
    SET_SECRET: (SetSecretParams, Empty),
    AGENT_VERBS: (NameParams, AgentVerbsResult),
    RUN_AGENT_VERB: (RunAgentVerbParams, TerminalStarted),
}
SERVER_NOTIFICATIONS: dict[str, object] = {
    TERMINAL_OUTPUT: TerminalOutputParams,
    TERMINAL_EXIT: TerminalExitParams,
    DECISION: DecisionParams,
    SANDBOXES: SandboxesParams,
}
CLIENT_NOTIFICATIONS: dict[str, object] = {
    TERMINAL_INPUT: TerminalInputParams,
    TERMINAL_RESIZE: TerminalResizeParams,
    TERMINAL_CLOSE: TerminalCloseParams,
}
