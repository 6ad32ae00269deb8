"""Sandboxes from the editor: the commands of the palette, terminals, and the watcher that
turns proxy decisions into diagnostics and held requests into prompts. A client of the
same supervisors as the CLI (see sandkit.lsp.protocol for the messages)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcServerError
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from sandkit.errors import SandkitError
from sandkit.lsp import protocol
from sandkit.lsp.sandboxes.terminals import Terminals
from sandkit.lsp.sandboxes.watch import Watcher, sandbox_rows
from sandkit.lsp.workspace import workspace_settings
from sandkit.sandbox import lifecycle
from sandkit.sandbox.store import Sandbox, SandboxError, Store, check_name, default_name

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer

T = TypeVar("T")
USER_ERROR = -32001  # a message for the person, not a bug report


def _params(args: tuple[Any, ...]) -> dict[str, Any]:
    first = args[0] if args else {}
    if isinstance(first, dict):
        return first
    return {"name": first} if isinstance(first, str) else {}


def _get(params: Any, key: str, default: Any = None) -> Any:
    """Custom notifications arrive as dicts or as pygls' attribute objects."""
    if isinstance(params, dict):
        return params.get(key, default)
    return getattr(params, key, default)


def _path(value: str) -> Path:
    return Path(to_fs_path(value) or value) if value.startswith("file:") else Path(value)


def _command(
    server: SandkitServer, name: str
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Register a command whose user errors (SandkitError) reach the editor as a message."""

    def decorate(handler: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def run(ls: LanguageServer, *args: Any) -> T:  # pygls reads these hints
            try:
                return await handler(ls, _params(args))
            except SandkitError as exc:
                raise JsonRpcServerError(  # type: ignore[no-untyped-call]
                    str(exc), USER_ERROR
                ) from None
            except KeyError as exc:
                raise JsonRpcServerError(  # type: ignore[no-untyped-call]
                    f"{name}: missing argument {exc}", USER_ERROR
                ) from None

        server.command(name)(run)
        return handler

    return decorate


ALLOW_FILE, NOT_NOW = "Allow", "Not now"


async def _ask_file_sources(ls: SandkitServer, config: Any) -> None:
    """Host files the kits name as credential sources are read only once a person allows
    them for that version of the kit: asked here, as `sandkit secret allow-file` asks in
    a terminal. Unanswered, the credential stays unset (the agent sees placeholders)."""
    from sandkit.hostconfig import registry_args
    from sandkit.kits.resolution import resolve
    from sandkit.net.secrets import SourceGrants, unallowed_file_sources

    try:
        resolution = await asyncio.to_thread(
            resolve, config.agent, config.kits, config.kit_args, registry_args()
        )
    except SandkitError:
        return  # creating the sandbox reports kit problems, with their positions
    grants = SourceGrants()
    for source in unallowed_file_sources(resolution.sandbox.credentials, grants):
        answer = await ls.window_show_message_request_async(
            types.ShowMessageRequestParams(
                type=types.MessageType.Warning,
                message=source.question(),
                actions=[types.MessageActionItem(title=t) for t in (ALLOW_FILE, NOT_NOW)],
            )
        )
        if answer is not None and answer.title == ALLOW_FILE:
            grants.allow_file(source.service, source.path, source.digest)


class Progress:
    """$/progress for one long step (image build, boot, installs)."""

    def __init__(self, server: SandkitServer, title: str) -> None:
        self.server, self.title = server, title
        self.token = str(uuid.uuid4())
        self.loop = asyncio.get_running_loop()
        self.ready = False

    async def begin(self) -> None:
        try:
            await self.server.work_done_progress.create_async(self.token)
        except Exception:  # a client without progress support: carry on without
            return
        self.ready = True
        self.server.work_done_progress.begin(
            self.token, types.WorkDoneProgressBegin(title=self.title, cancellable=False)
        )

    def report(self, message: str, percentage: int | None = None) -> None:
        if self.ready:
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def image_step(self, label: str, index: int, total: int) -> None:  # from a worker thread
        self.loop.call_soon_threadsafe(
            self.report, f"guest image: {label}", 100 * index // max(total, 1)
        )

    def end(self, message: str) -> None:
        if self.ready:
            self.server.work_done_progress.end(
                self.token, types.WorkDoneProgressEnd(message=message)
            )


def register(server: SandkitServer) -> None:
    terminals = Terminals(server)
    watcher = Watcher(server)

    @server.feature(types.INITIALIZED)
    def initialized(ls: SandkitServer, params: types.InitializedParams) -> None:
        watcher.start()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: SandkitServer, params: None) -> None:
        terminals.close_all()

    @server.feature(protocol.TERMINAL_INPUT)
    async def terminal_input(ls: SandkitServer, params: Any) -> None:
        await terminals.input(
            int(_get(params, "terminal")), str(_get(params, "data", "")), bool(_get(params, "eof"))
        )

    @server.feature(protocol.TERMINAL_CLOSE)
    def terminal_close(ls: SandkitServer, params: Any) -> None:
        terminals.close(int(_get(params, "terminal")))

    @server.feature(protocol.TERMINAL_RESIZE)
    async def terminal_resize(ls: SandkitServer, params: Any) -> None:
        await terminals.resize(
            int(_get(params, "terminal")), int(_get(params, "rows")), int(_get(params, "cols"))
        )

    async def started(ls: SandkitServer, sandbox: Sandbox) -> None:
        progress = Progress(ls, f"Sandbox {sandbox.name}")
        await progress.begin()
        try:
            await lifecycle.start(
                sandbox,
                progress=progress.image_step,
                waiting=lambda state: progress.report(f"{state} (boot and kit installs)"),
            )
        finally:
            progress.end("running")
        watcher.scan()  # follow it now, not at the next scan

    @_command(server, protocol.OPEN_WORKSPACE)
    async def open_workspace(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        from sandkit.sandbox.request import SandboxRequest, build, kit_ref
        from sandkit.sandbox.trust import TrustStore

        folder = _path(str(p["folder"])).resolve()
        if not folder.is_dir():
            raise SandboxError(f"{folder} is not a folder")
        trusted = ls.settings.workspace_trusted or TrustStore().is_trusted(folder)
        filtered = workspace_settings(folder, trusted)
        if filtered.ignored:
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning, message=filtered.message(folder)
                )
            )
        defaults = filtered.settings
        agent = str(p.get("agent") or defaults.get("agent") or ls.settings.default_agent)
        name = str(p["name"]) if p.get("name") else default_name(kit_ref(agent), folder)
        store = Store()
        sandbox = Sandbox(store.root, check_name(name))
        created = not sandbox.exists()
        if created:
            ca = p.get("upstreamCa") or defaults.get("upstreamCa")
            config = build(
                SandboxRequest(
                    agent=agent,
                    kits=[
                        str(k)
                        for k in p.get("kits") or defaults.get("kits") or ls.settings.default_kits
                    ],
                    kit_args={**(defaults.get("kitArgs") or {}), **(p.get("kitArgs") or {})},
                    workspace=folder,
                    name=name,
                    memory=str(p.get("memory") or defaults.get("memory") or "1g"),
                    default_policy=str(p.get("default") or defaults.get("default") or "balanced"),
                    resolve=dict(p.get("resolve") or defaults.get("resolve") or {}),
                    upstream_ca=(folder / str(ca)) if ca else None,
                    ask_timeout=ls.settings.approval_timeout,
                )
            )
            await _ask_file_sources(ls, config)
            sandbox, _ = await lifecycle.create_or_adopt(store, config, folder)
        await started(ls, sandbox)
        if created:
            lifecycle.refill_after(sandbox, config)
        return {"name": name, "state": sandbox.state().state, "created": created}

    @_command(server, protocol.EXEC)
    async def exec_(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        sandbox = Store().get(str(p["name"]))
        await started(ls, sandbox)
        argv = [str(a) for a in p["argv"]]
        options = {
            "user": str(p.get("user") or "agent"),
            "cwd": p.get("cwd") or sandbox.config().workspace,
            "env": dict(p.get("env") or {}),
            "pty": bool(p.get("pty")),
            "rows": int(p.get("rows") or 24),
            "cols": int(p.get("cols") or 80),
        }
        if p.get("stream"):
            return {"terminal": await terminals.start(sandbox, argv, **options)}
        return await _collect(sandbox, argv, options)

    @_command(server, protocol.RUN_AGENT)
    async def run_agent(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        from sandkit.hostconfig import registry_args
        from sandkit.kits import resolve
        from sandkit.sandbox.agent_command import agent_argv

        sandbox = Store().get(str(p["name"]))
        config = sandbox.config()
        resolved = await asyncio.to_thread(
            resolve,
            config.agent,
            config.kits,
            config.kit_args,
            defaults=config.arg_defaults or registry_args(),
        )
        await started(ls, sandbox)
        argv = agent_argv(resolved.sandbox, [str(a) for a in p.get("args") or []], True)
        terminal = await terminals.start(
            sandbox,
            argv,
            user="agent",
            cwd=config.workspace,
            env=dict(resolved.sandbox.environment),
            pty=True,
            rows=int(p.get("rows") or 24),
            cols=int(p.get("cols") or 80),
        )
        return {"terminal": terminal}

    @_command(server, protocol.STOP)
    async def stop(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        await lifecycle.stop(Store().get(str(p["name"])))
        watcher.forget(str(p["name"]))
        return {}

    @_command(server, protocol.REMOVE)
    async def remove(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        store = Store()
        await lifecycle.remove(store, store.get(str(p["name"])), force=bool(p.get("force")))
        watcher.forget(str(p["name"]))
        return {}

    @_command(server, protocol.LIST)
    async def list_(ls: SandkitServer, p: dict[str, Any]) -> list[protocol.SandboxRow]:
        return sandbox_rows()  # the rows sandkit/sandboxes pushes when they change

    @_command(server, protocol.SHOW_NETWORK_LOG)
    async def network_log(ls: SandkitServer, p: dict[str, Any]) -> list[dict[str, Any]]:
        from sandkit.net.decisions import read_log

        sandbox = Store().get(str(p["name"]))
        limit = int(p.get("limit") or 200)
        records = await asyncio.to_thread(read_log, sandbox.dir / "decisions.jsonl")
        return [json_record(r) for r in records[-limit:]]

    @_command(server, protocol.VALIDATE_KIT)
    async def validate_kit(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        from sandkit.kits.issues import KitError
        from sandkit.kits.loader import load_kit, load_text

        target = str(p.get("uri") or p.get("path") or "")
        document = ls.workspace.text_documents.get(target) if target.startswith("file:") else None
        try:
            if document is not None:
                loaded = load_text(document.source, document.path)
            else:
                loaded = await asyncio.to_thread(load_kit, _path(target))
        except KitError as exc:
            return {"valid": False, "issues": [issue_json(i) for i in exc.issues]}
        return {"valid": True, "issues": [issue_json(i) for i in loaded.warnings]}

    @_command(server, protocol.NEW_KIT)
    async def new_kit(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        folder = _path(str(p["folder"]))
        name = str(p.get("name") or "my-kit")
        kind = str(p.get("kind") or "mixin")
        if kind not in ("mixin", "sandbox"):
            raise SandboxError(f"kind '{kind}': a kit is a mixin or a sandbox")
        if not name.replace("-", "").isalnum() or not name[0].isalpha():
            raise SandboxError(
                f"kit name '{name}': use letters, digits and '-', starting with a letter"
            )
        spec = folder / name / "spec.yaml"
        if spec.exists():
            raise SandboxError(f"{spec} exists already")
        uri = spec.resolve().as_uri()
        edit = types.WorkspaceEdit(
            document_changes=[
                types.CreateFile(uri=uri, options=types.CreateFileOptions(ignore_if_exists=False)),
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(uri, None),
                    edits=[
                        types.TextEdit(
                            types.Range(types.Position(0, 0), types.Position(0, 0)),
                            skeleton(name, kind),
                        )
                    ],
                ),
            ]
        )
        result = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=f"New kit {name}")
        )
        if not result.applied:
            raise SandboxError(f"the editor did not create {spec}: {result.failure_reason}")
        return {"uri": uri}

    @_command(server, protocol.UNDO)
    async def undo(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        from sandkit.sandbox import undo

        sandbox = Store().get(str(p["name"]))
        entries = undo.trash(sandbox)
        wanted = [str(x) for x in p.get("paths") or []]
        wanted += undo.last_batch(entries) if p.get("last") else []
        return {"restored": [rel for rel, _ in undo.restore(sandbox, entries, wanted)]}


async def _collect(sandbox: Sandbox, argv: list[str], options: dict[str, Any]) -> dict[str, Any]:
    import base64

    from sandkit.rpc import exit_status
    from sandkit.sandbox.protocol import ExitEvent

    async with await lifecycle.connect(sandbox) as client:
        remote = await client.exec(argv, **options)
        out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        while not isinstance(event := await remote.next(), ExitEvent):
            out[event.stream].append(base64.b64decode(event.data))
        return {
            "code": exit_status(event.code, event.signal),
            "stdout": b"".join(out["stdout"]).decode(errors="replace"),
            "stderr": b"".join(out["stderr"]).decode(errors="replace"),
        }


def json_record(record: Any) -> dict[str, Any]:
    import json

    return dict(json.loads(record.to_json()))


def issue_json(issue: Any) -> dict[str, Any]:
    s = issue.span
    return {
        "file": issue.file,
        "range": {"start": [s.line, s.column], "end": [s.end_line, s.end_column]},
        "severity": str(issue.severity),
        "code": issue.code,
        "message": issue.message,
    }


def skeleton(name: str, kind: str) -> str:
    agent = "sandbox:\n  entrypoint: [bash, -l]\n" if kind == "sandbox" else ""
    return (
        f'schemaVersion: "2"\nkind: {kind}\nname: {name}\n'
        f"displayName: {name}\ndescription: What this kit adds to a sandbox.\n{agent}"
        "permissions:\n  network:\n    allow: []  # hosts the agent may reach\n"
        "environment:\n  variables: {}\n"
        "setup:\n  install: []  # commands run once when the sandbox is created\n"
        "agentInstructions:\n  content: |\n    What the agent should know about this kit.\n"
    )
