"""Sandboxes, watched from the editor: the list of them is pushed to the client whenever it
changes (sandkit/sandboxes); the proxy decisions of running ones become diagnostics on the
kit lines that decided them (and a live log), and requests held for approval become
prompts (window/showMessageRequest) whose answer goes back to the supervisor."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sandkit import pids
from sandkit.errors import SandkitError
from sandkit.kits.builtin import looks_like_path
from sandkit.kits.issues import KitError
from sandkit.kits.yamlpos import parse
from sandkit.lsp import protocol
from sandkit.lsp.kitdocs import insert_edit
from sandkit.lsp.kitdocs.cursor import schema_version
from sandkit.lsp.kitdocs.edits import NETWORK_POLICY, add_allowed_host
from sandkit.net.approvals import host_with_port
from sandkit.sandbox import lifecycle
from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.state import SandboxState, SyncStatus
from sandkit.sandbox.store import Sandbox, State, Store
from sandkit.tasks import spawn

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer

log = logging.getLogger("sandkit.lsp.watch")
SOURCE = "decisions"
SCAN_EVERY = 1.0
_ORIGIN = re.compile(r"^(?P<kit>\S+) \((?P<file>.+):(?P<line>\d+):(?P<col>\d+)\)$")
BLOCKED_REASONS = ("default-deny", "deny-rule", "refused-by-user")


@dataclass
class Tally:
    count: int = 0
    credentials: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)


@dataclass
class Watched:
    sandbox: Sandbox
    kit_files: list[Path]  # the sandbox's own kits (not built-in), where fixes can go
    offset: int = 0
    allowed: dict[tuple[str, int, int, str], Tally] = field(default_factory=dict)
    blocked: dict[str, Tally] = field(default_factory=dict)
    denied_by_rule: dict[tuple[str, int, int, str], Tally] = field(default_factory=dict)
    recent: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    approvals: asyncio.Task[None] | None = None
    uris: set[str] = field(default_factory=set)  # documents that carry our diagnostics
    sync: str | None = None  # the sync state last seen (paused: deletions held)
    asking_sync: bool = False


def sandbox_rows(store: Store | None = None) -> list[protocol.SandboxRow]:
    """What ``sandkit.list`` answers and ``sandkit/sandboxes`` pushes: every sandbox but
    the warm pool's members."""
    return [
        sandbox_row(sandbox, sandbox.state())
        for sandbox in (store or Store()).all()
        if not lifecycle.is_pool_member(sandbox)
    ]


def sandbox_row(sandbox: Sandbox, state: State) -> protocol.SandboxRow:
    try:
        config = sandbox.config()
    except SandkitError as exc:  # shown, so that it can be removed, not hiding the others
        return {
            "name": sandbox.name,
            "state": "damaged",
            "agent": "",
            "kits": [],
            "workspace": None,
            "sync": None,
            "error": str(exc),
        }
    return {
        "name": sandbox.name,
        "state": state.state,
        "agent": config.agent,
        "kits": config.kits,
        "workspace": config.workspace,
        "sync": state.sync if state.state == SandboxState.RUNNING else None,
        "error": state.error,
    }


def kit_spec_files(refs: list[str]) -> list[Path]:
    files = []
    for ref in refs:
        if not looks_like_path(ref) and not Path(ref).exists():
            continue  # built-in: not the user's to edit
        path = Path(ref)
        spec = path / "spec.yaml" if path.is_dir() else path
        if spec.is_file() and spec.suffix in (".yaml", ".yml"):
            files.append(spec.resolve())
    return files


class Watcher:
    def __init__(self, server: SandkitServer) -> None:
        self.server = server
        self.watched: dict[str, Watched] = {}
        self._task: asyncio.Task[None] | None = None
        self._rows: list[protocol.SandboxRow] | None = None  # as last sent to the client

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._loop(), "watch-sandboxes")

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.scan()
            await asyncio.sleep(SCAN_EVERY / 4 if self.watched else SCAN_EVERY)

    def scan(self) -> None:
        """Follow every running sandbox; forget the ones that are gone; send the list of
        sandboxes if it changed."""
        alive = {}
        rows = []
        for sandbox in Store().all():
            if lifecycle.is_pool_member(sandbox):
                continue
            state = sandbox.state()
            rows.append(sandbox_row(sandbox, state))
            if state.state == SandboxState.RUNNING and pids.alive(state.supervisor_pid):
                alive[sandbox.name] = sandbox
        for name in list(self.watched):
            if name not in alive:
                self.forget(name, send=False)  # the rows go at the end of the scan
        for name, sandbox in alive.items():
            try:  # one damaged sandbox must not stop the others from being watched
                watched = self.watched.get(name)
                if watched is None:
                    config = sandbox.config()
                    watched = Watched(sandbox, kit_spec_files([config.agent, *config.kits]))
                    self.watched[name] = watched
                    watched.approvals = spawn(self._approvals(watched), f"approvals-{name}")
                self._read(watched)
                self._sync(watched, sandbox.state().sync)
            except (SandkitError, OSError, ValueError) as exc:
                log.warning("cannot watch sandbox %s: %s", name, exc)
        self._send(rows)

    def _send(self, rows: list[protocol.SandboxRow]) -> None:
        if rows != self._rows:
            self._rows = rows
            params: protocol.SandboxesParams = {"sandboxes": rows}
            self.server.protocol.notify(protocol.SANDBOXES, params)

    def forget(self, name: str, send: bool = True) -> None:
        """Stop following a sandbox (stopped or removed): its diagnostics go, and the
        client hears of the change now rather than at the next scan."""
        watched = self.watched.pop(name, None)
        if send:
            with contextlib.suppress(OSError):
                self._send(sandbox_rows())
        if watched is None:
            return
        if watched.approvals is not None:
            watched.approvals.cancel()
        for uri in watched.uris:
            self.server.publish(uri, f"{SOURCE}:{name}", [])

    # -- decisions ------------------------------------------------------------------------
    def _read(self, watched: Watched) -> None:
        path = watched.sandbox.dir / "decisions.jsonl"
        try:
            with path.open("rb") as f:
                f.seek(watched.offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        if end == 0:
            return
        watched.offset += end
        records = []
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        for record in records:
            self._count(watched, record)
            watched.recent.append(record)
            params: protocol.DecisionParams = {"sandbox": watched.sandbox.name, "record": record}
            self.server.protocol.notify(protocol.DECISION, params)
        if records:
            self._publish(watched)

    def _count(self, watched: Watched, record: dict[str, Any]) -> None:
        origin = _ORIGIN.match(str(record.get("origin") or ""))
        host = str(record.get("host"))
        if record.get("action") == "allowed" and origin is not None:
            key = (origin["file"], int(origin["line"]), int(origin["col"]), host)
            tally = watched.allowed.setdefault(key, Tally())
        elif record.get("action") == "blocked" and record.get("reason") in BLOCKED_REASONS:
            if record.get("reason") == "deny-rule" and origin is not None:
                key = (origin["file"], int(origin["line"]), int(origin["col"]), host)
                tally = watched.denied_by_rule.setdefault(key, Tally())
            else:
                tally = watched.blocked.setdefault(host, Tally())
        else:
            return
        tally.count += 1
        tally.credentials.update(record.get("credentials") or [])
        tally.reasons.add(str(record.get("reason")))

    def _publish(self, watched: Watched) -> None:
        per_uri: dict[str, list[types.Diagnostic]] = {}
        for (file, line, col, host), tally in watched.allowed.items():
            message = f"{host}: {_requests(tally.count)} allowed"
            if tally.credentials:
                message += f", credential {', '.join(sorted(tally.credentials))} injected"
            per_uri.setdefault(Path(file).resolve().as_uri(), []).append(
                _at(line, col, message, types.DiagnosticSeverity.Information, "allowed-host")
            )
        for (file, line, col, host), tally in watched.denied_by_rule.items():
            per_uri.setdefault(Path(file).resolve().as_uri(), []).append(
                _at(
                    line,
                    col,
                    f"{host}: {_requests(tally.count)} blocked by this rule",
                    types.DiagnosticSeverity.Information,
                    "denied-host",
                )
            )
        for spec in watched.kit_files[:1]:  # the sandbox's first own kit: where a fix goes
            anchor = network_anchor(spec)
            for host, tally in watched.blocked.items():
                why = ", ".join(sorted(tally.reasons))
                diag = _at(
                    anchor[0] + 1,
                    anchor[1] + 1,
                    f"{_requests(tally.count)} to {host} blocked ({why}) in sandbox "
                    f"{watched.sandbox.name}",
                    types.DiagnosticSeverity.Warning,
                    "blocked-host",
                    length=anchor[2],
                )
                diag.data = {"host": host, "sandbox": watched.sandbox.name}
                per_uri.setdefault(spec.as_uri(), []).append(diag)
        for uri in watched.uris - set(per_uri):
            self.server.publish(uri, f"{SOURCE}:{watched.sandbox.name}", [])
        for uri, diagnostics in per_uri.items():
            self.server.publish(uri, f"{SOURCE}:{watched.sandbox.name}", diagnostics)
        watched.uris = set(per_uri)

    # -- sync: held deletions and conflicts ------------------------------------------------
    def _sync(self, watched: Watched, state: str | None) -> None:
        before, watched.sync = watched.sync, state
        if state == before or watched.asking_sync:
            return
        status = SyncStatus.of(state) if state is not None else None
        if status == SyncStatus.PAUSED:
            watched.asking_sync = True
            spawn(self._ask_sync(watched), "sync-prompt")
        elif status == SyncStatus.CONFLICTS:
            self.server.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning,
                    message=f"Sandbox {watched.sandbox.name}: a file changed on both sides; "
                    "both versions are kept (the sandbox's as NAME.sandbox-conflict-WHEN).",
                )
            )

    async def _ask_sync(self, watched: Watched) -> None:
        name = watched.sandbox.name
        try:
            async with await lifecycle.connect(watched.sandbox) as client:
                if await self._answer_sync(name, client):
                    # More may have been held while the question was open: the next scan
                    # asks again if the sync is still paused.
                    watched.sync = None
        except (SandkitError, ConnectionError):
            pass
        finally:
            watched.asking_sync = False

    async def _answer_sync(self, name: str, client: SupervisorClient) -> bool:
        """Ask the person about the held changes, and pass the answer on (True)."""
        status = await client.sync_status()
        held = status.held
        runs = [d.path for d in status.details if "protected" in d.why]
        shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        if runs:
            message = (
                f"Sandbox {name} changed files that your machine runs ({shown}): git "
                "hooks or config, editor tasks, shell or direnv files. They are held. "
                f"See `sandkit sync pending {name}` for the diff. Apply them on the host "
                "(its versions go to the trash), or put the host's versions back?"
            )
            accept = protocol.APPLY_ON_HOST
        else:
            message = (
                f"Sandbox {name} deleted or emptied many files at once ({shown}). They "
                "are still in your workspace. Delete them there too (into the trash), or "
                "put them back in the sandbox?"
            )
            accept = protocol.DELETE_TOO
        answer = await self.server.window_show_message_request_async(
            types.ShowMessageRequestParams(
                type=types.MessageType.Warning,
                message=message,
                actions=[
                    types.MessageActionItem(title=protocol.PUT_BACK),
                    types.MessageActionItem(title=accept),
                ],
            )
        )
        if answer is not None and answer.title == accept:
            await client.sync_approve()
        elif answer is not None and answer.title == protocol.PUT_BACK:
            await client.sync_reject()
        else:
            return False
        return True

    # -- approvals ------------------------------------------------------------------------
    async def _approvals(self, watched: Watched) -> None:
        """Follow the sandbox's held requests for as long as it is watched, reconnecting
        if the connection to its supervisor drops."""
        while self.watched.get(watched.sandbox.name) is watched:
            try:
                client = await lifecycle.connect(watched.sandbox)
            except SandkitError:
                await asyncio.sleep(1.0)
                continue
            try:
                async with client:
                    await client.watch()
                    async for event in client.events():  # until the connection ends
                        if event.get("event") == "approval":
                            spawn(self._ask(watched, client, event), "approval-prompt")
            except SandkitError:
                pass  # the supervisor closed the connection, or refused to be watched
            await asyncio.sleep(0.5)

    async def _ask(self, watched: Watched, client: SupervisorClient, event: dict[str, Any]) -> None:
        host, port, name = str(event["host"]), int(event["port"]), watched.sandbox.name
        choices = [protocol.ALLOW_ONCE, protocol.ALLOW_SANDBOX]
        if watched.kit_files:
            choices.append(protocol.ADD_TO_KIT)
        choices.append(protocol.DENY)
        params = types.ShowMessageRequestParams(
            type=types.MessageType.Warning,
            message=f"Sandbox {name}: the agent wants to reach {host}:{port}, which no rule "
            "allows.",
            actions=[types.MessageActionItem(title=c) for c in choices],
        )
        try:
            answer = await asyncio.wait_for(
                self.server.window_show_message_request_async(params),
                self.server.settings.approval_timeout,
            )
        except TimeoutError:
            return  # the proxy denies it when its own time runs out
        title = answer.title if answer is not None else protocol.DENY
        with contextlib.suppress(SandkitError, ConnectionError):
            if title == protocol.ALLOW_ONCE:
                await client.approve(host_with_port(host, port), remember=False)
            elif title == protocol.ALLOW_SANDBOX:
                await client.approve(host, remember=True)
            elif title == protocol.ADD_TO_KIT:
                await self.add_to_kit(watched.kit_files[0], host)
                await client.approve(host, remember=True)
            else:
                await client.deny(host_with_port(host, port), remember=False)

    async def add_to_kit(self, spec: Path, host: str) -> bool:
        """Allow ``host`` in the kit file through the editor (workspace/applyEdit), so that
        an open buffer, its undo history and the file's comments are all kept."""
        uri = spec.as_uri()
        document = self.server.workspace.text_documents.get(uri)
        text = document.source if document is not None else spec.read_text()
        insert = add_allowed_host(text, host)
        if insert is None:
            return False
        version = document.version if document is not None else None
        edit = types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(uri, version),
                    edits=[insert_edit(text, insert)],
                )
            ]
        )
        result = await self.server.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=f"Allow {host}")
        )
        return bool(result.applied)


def _requests(count: int) -> str:
    return f"{count} request{'s' if count != 1 else ''}"


def _at(
    line: int,
    col: int,
    message: str,
    severity: types.DiagnosticSeverity,
    code: str,
    length: int = 0,
) -> types.Diagnostic:
    """A diagnostic at a 1-based line:col (as decision records name kit rules)."""
    start = types.Position(max(line - 1, 0), max(col - 1, 0))
    end = types.Position(start.line, start.character + length) if length else start
    return types.Diagnostic(
        range=types.Range(start, end),
        message=message,
        severity=severity,
        code=code,
        source="sandkit",
    )


def network_anchor(spec: Path) -> tuple[int, int, int]:
    """0-based line, column and length of the kit's network section key (or its first
    line): where warnings about blocked hosts are shown."""
    try:
        text = spec.read_text()
        located = parse(text, str(spec))
    except (OSError, KitError):
        return 0, 0, 0
    version = schema_version(text)
    data = located.data if isinstance(located.data, dict) else {}
    if version == "3":
        for i, cap in enumerate(data.get("capabilities") or []):
            if isinstance(cap, dict) and cap.get("type") in NETWORK_POLICY:
                span = located.values[("capabilities", i)]
                return span.line, span.column, len("type")
    for path in (("permissions", "network"), ("network",), ("permissions",)):
        if path in located.keys:
            span = located.keys[path]
            return span.line, span.column, span.end_column - span.column
    return 0, 0, 0
