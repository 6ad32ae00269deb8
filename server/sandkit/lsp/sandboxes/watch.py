"""Sandboxes, watched from the editor: the list of them is pushed to the client whenever it
changes (sandkit/sandboxes), with each running one's sessions and published ports; its
proxy decisions become diagnostics (decisions.py); requests held for approval, held sync
changes and new guest listeners become prompts (window/showMessageRequest) whose answer
goes back to the supervisor."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sandkit import pids
from sandkit.errors import SandkitError
from sandkit.logs import logger
from sandkit.lsp import protocol
from sandkit.lsp.kitdocs import insert_edit
from sandkit.lsp.kitdocs.edits import add_allowed_host
from sandkit.lsp.sandboxes.decisions import Decisions
from sandkit.lsp.sandboxes.rows import Live, kit_spec_files, sandbox_row, sandbox_rows
from sandkit.net.approvals import host_with_port
from sandkit.sandbox import lifecycle
from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.state import SandboxState, SyncStatus
from sandkit.sandbox.store import Sandbox, Store
from sandkit.tasks import spawn

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer

log = logger("sandkit.lsp.watch")
SCAN_EVERY = 1.0


@dataclass
class Watched:
    sandbox: Sandbox
    decisions: Decisions
    follow: asyncio.Task[None] | None = None  # the watching connection to the supervisor
    sync: str | None = None  # the sync state last seen (paused: deletions held)
    asking_sync: bool = False
    offered: set[int] = field(default_factory=set)  # guest ports offered for publishing


class Watcher:
    def __init__(self, server: SandkitServer) -> None:
        self.server = server
        self.watched: dict[str, Watched] = {}
        self.live: dict[str, Live] = {}  # sessions and ports, by sandbox
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
            rows.append(sandbox_row(sandbox, state, self.live.get(sandbox.name)))
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
                    kits = kit_spec_files([config.agent, *config.kits])
                    watched = Watched(sandbox, Decisions(sandbox, kits))
                    self.watched[name] = watched
                    watched.follow = spawn(self._follow(watched), f"follow-{name}")
                watched.decisions.read(self.server)
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
        self.live.pop(name, None)
        if send:
            with contextlib.suppress(OSError):
                self._send(sandbox_rows(live=self.live))
        if watched is None:
            return
        if watched.follow is not None:
            watched.follow.cancel()
        watched.decisions.clear(self.server)

    async def refresh(self, name: str, client: SupervisorClient) -> set[int]:
        """Ask the supervisor for its sessions and ports now (after a command changed
        them), and send the rows if that changed them; answers the guest's listeners."""
        watched = self.watched.get(name)
        ports = await client.ports()
        sessions = await client.sessions()
        if self.watched.get(name) is not watched:
            # Forgotten meanwhile (stopped, removed): its sessions must not come back, nor
            # show on a sandbox made later under the same name.
            return set(ports.listening)
        self.live[name] = Live.of(sessions, ports.ports)
        with contextlib.suppress(OSError):
            self._send(sandbox_rows(live=self.live))
        return set(ports.listening)

    # -- the watching connection: approvals, new listeners, sessions and ports ------------
    async def _follow(self, watched: Watched) -> None:
        """Follow the sandbox's events for as long as it is watched, reconnecting if the
        connection to its supervisor drops."""
        name = watched.sandbox.name
        while self.watched.get(name) is watched:
            try:
                client = await lifecycle.connect(watched.sandbox)
            except SandkitError:
                await asyncio.sleep(1.0)
                continue
            poll = None
            try:
                async with client:
                    await client.watch()
                    poll = spawn(self._poll(watched, client), f"poll-{name}")
                    async for event in client.events():  # until the connection ends
                        if event.get("event") == "approval":
                            spawn(self._ask(watched, client, event), "approval-prompt")
                        elif event.get("event") == "port-listening":
                            port = int(event["port"])
                            spawn(self._offer_port(watched, client, port), "port-prompt")
            except SandkitError:
                pass  # the supervisor closed the connection, or refused to be watched
            finally:
                if poll is not None:
                    poll.cancel()
            await asyncio.sleep(0.5)

    async def _poll(self, watched: Watched, client: SupervisorClient) -> None:
        """Sessions start and end, and ports are published, from the CLI too: asked for
        on the watching connection at the pace of the scans. A guest port listening now
        that did not at the last look is offered too: the supervisor's port-listening
        event is lost when a `ports` call (this one, or the CLI's) saw the port first."""
        before: set[int] | None = None  # the first look is the baseline: nothing offered
        while True:
            with contextlib.suppress(SandkitError):
                listening = await self.refresh(watched.sandbox.name, client)
                for port in sorted(listening - before if before is not None else set()):
                    spawn(self._offer_port(watched, client, port), "port-prompt")
                before = listening
            await asyncio.sleep(SCAN_EVERY)

    async def _offer_port(self, watched: Watched, client: SupervisorClient, port: int) -> None:
        """A guest port started listening: offer to publish it (once per port)."""
        name = watched.sandbox.name
        live = self.live.get(name) or Live()
        if port in watched.offered or any(p["guest"] == port for p in live.ports):
            return
        watched.offered.add(port)
        answer = await self.server.window_show_message_request_async(
            types.ShowMessageRequestParams(
                type=types.MessageType.Info,
                message=f"Publish port {port} of sandbox {name}?",
                actions=[types.MessageActionItem(title=t) for t in (protocol.PUBLISH, NOT_NOW)],
            )
        )
        if answer is None or answer.title != protocol.PUBLISH:
            return
        try:
            host = await publish(client, port)
        except SandkitError as exc:
            self.server.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=str(exc))
            )
            return
        with contextlib.suppress(SandkitError):
            await self.refresh(name, client)
        await offer_browser(self.server, name, port, host)

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
    async def _ask(self, watched: Watched, client: SupervisorClient, event: dict[str, Any]) -> None:
        host, port, name = str(event["host"]), int(event["port"]), watched.sandbox.name
        kit_files = watched.decisions.kit_files
        choices = [protocol.ALLOW_ONCE, protocol.ALLOW_SANDBOX]
        if kit_files:
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
                await self.add_to_kit(kit_files[0], host)
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


NOT_NOW = "Not now"


async def publish(client: SupervisorClient, port: int) -> int:
    """Publish a guest port on the same host port if that is free, else on a free one;
    answers the host port."""
    from sandkit.sandbox.remote import SupervisorError

    try:
        result = await client.publish(f"{port}:{port}")
    except SupervisorError:
        result = await client.publish(str(port))
    return next(p.host for p in result.ports if p.guest == port)


async def offer_browser(server: SandkitServer, name: str, guest: int, host: int) -> None:
    url = f"http://127.0.0.1:{host}/"
    answer = await server.window_show_message_request_async(
        types.ShowMessageRequestParams(
            type=types.MessageType.Info,
            message=f"Port {guest} of sandbox {name} is published at {url}",
            actions=[types.MessageActionItem(title=protocol.OPEN_IN_BROWSER)],
        )
    )
    if answer is not None and answer.title == protocol.OPEN_IN_BROWSER:
        await server.window_show_document_async(types.ShowDocumentParams(uri=url, external=True))
