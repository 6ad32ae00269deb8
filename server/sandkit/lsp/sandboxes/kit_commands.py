"""Kits and logs from the palette: validate a kit, make a new one, read a sandbox's
network log."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sandkit.lsp import protocol
from sandkit.lsp.sandboxes.common import Context, command, to_path
from sandkit.sandbox.store import SandboxError, Store

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer


def register(ctx: Context) -> None:
    server = ctx.server

    @command(server, protocol.SHOW_NETWORK_LOG)
    async def network_log(ls: SandkitServer, p: dict[str, Any]) -> list[dict[str, Any]]:
        from sandkit.net.decisions import read_log

        sandbox = Store().get(str(p["name"]))
        limit = int(p.get("limit") or 200)
        records = await asyncio.to_thread(read_log, sandbox.dir / "decisions.jsonl")
        return [json_record(r) for r in records[-limit:]]

    @command(server, protocol.VALIDATE_KIT)
    async def validate_kit(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        from sandkit.kits.issues import KitError
        from sandkit.kits.loader import load_kit, load_text

        target = str(p.get("uri") or p.get("path") or "")
        document = ls.workspace.text_documents.get(target) if target.startswith("file:") else None
        try:
            if document is not None:
                loaded = load_text(document.source, document.path)
            else:
                loaded = await asyncio.to_thread(load_kit, to_path(target))
        except KitError as exc:
            return {"valid": False, "issues": [issue_json(i) for i in exc.issues]}
        return {"valid": True, "issues": [issue_json(i) for i in loaded.warnings]}

    @command(server, protocol.NEW_KIT)
    async def new_kit(ls: SandkitServer, p: dict[str, Any]) -> dict[str, Any]:
        folder = to_path(str(p["folder"]))
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


def json_record(record: Any) -> dict[str, Any]:
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
