"""A sandbox's life from the editor: open the workspace in one (made if need be), run a
command in it, stop, remove, list, undo the sync's last deletions, and the secrets a kit
needs before it can boot."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sandkit.errors import SandkitError
from sandkit.lsp import protocol
from sandkit.lsp.sandboxes.common import Context, command, to_path
from sandkit.lsp.sandboxes.rows import sandbox_rows
from sandkit.lsp.workspace import workspace_settings
from sandkit.sandbox import lifecycle, pool
from sandkit.sandbox.store import Sandbox, SandboxError, Store, check_name, default_name

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer

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


def register(ctx: Context) -> None:
    server, watcher = ctx.server, ctx.watcher

    @command(server, protocol.OPEN_WORKSPACE)
    async def open_workspace(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        from sandkit.sandbox.request import SandboxRequest, build, kit_ref
        from sandkit.sandbox.trust import TrustStore

        folder = to_path(str(p["folder"])).resolve()
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
            # None: the agent kit's resources, else the host-scaled default (kits/shape.py)
            memory = p.get("memory") or defaults.get("memory")
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
                    memory=str(memory) if memory else None,
                    default_policy=str(p.get("default") or defaults.get("default") or "balanced"),
                    resolve=dict(p.get("resolve") or defaults.get("resolve") or {}),
                    upstream_ca=(folder / str(ca)) if ca else None,
                    ask_timeout=ls.settings.approval_timeout,
                    docker=next(
                        (
                            v
                            for v in (p.get("docker"), defaults.get("docker"))
                            if isinstance(v, bool)
                        ),
                        ls.settings.docker,
                    ),
                )
            )
            await _ask_file_sources(ls, config)
            sandbox, _ = await pool.create_or_adopt(store, config, folder)
        await ctx.started(ls, sandbox)
        if created:
            pool.refill_after(sandbox, config)
        return {"name": name, "state": sandbox.state().state, "created": created}

    @command(server, protocol.SET_SECRET)
    async def set_secret(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        """The value of a credential a kit requires (what `sandkit secret set` stores)."""
        from sandkit.net.secrets import SecretStore

        service, value = str(p["service"]), str(p["value"])
        sandbox = check_name(str(p["sandbox"])) if p.get("sandbox") else None
        await asyncio.to_thread(SecretStore(sandbox=sandbox).set, service, value)
        return {}

    @command(server, protocol.EXEC)
    async def exec_(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        sandbox = Store().get(str(p["name"]))
        await ctx.started(ls, sandbox)
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
            return {"terminal": await ctx.terminals.start(sandbox, argv, **options)}
        return await _collect(sandbox, argv, options)

    @command(server, protocol.STOP)
    async def stop(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        await lifecycle.stop(Store().get(str(p["name"])))
        watcher.forget(str(p["name"]))
        return {}

    @command(server, protocol.REMOVE)
    async def remove(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        store = Store()
        await lifecycle.remove(store, store.get(str(p["name"])), force=bool(p.get("force")))
        watcher.forget(str(p["name"]))
        return {}

    @command(server, protocol.LIST)
    async def list_(ls: SandkitServer, p: dict[str, Any]) -> list[protocol.SandboxRow]:
        return sandbox_rows(live=watcher.live)  # the rows sandkit/sandboxes pushes

    @command(server, protocol.UNDO)
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
