"""Kits in the editor, through the real server: diagnostics with the kit engine's exact
ranges, completion, hover, outline, quick fixes and the kit commands."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

CORPUS = Path(__file__).parent.parent / "data" / "kit-corpus"

KIT = """\
schemaVersion: "2"
kind: mixin
name: demo
# where the agent may go
permissions:
  network:
    allow:
      - api.example.com   # the API
enviroment:
  variables:
    A: b
"""


def open_doc(client: LanguageClient, path: Path, text: str) -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=text)
        )
    )
    return uri


def change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def diagnostics(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    while True:
        await asyncio.wait_for(
            client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 5
        )
        if uri in client.diagnostics:
            return list(client.diagnostics.pop(uri))


def rng(l1: int, c1: int, l2: int, c2: int) -> types.Range:
    return types.Range(types.Position(l1, c1), types.Position(l2, c2))


async def test_diagnostics_have_exact_ranges_and_follow_edits(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = open_doc(client, tmp_path / "demo" / "spec.yaml", KIT)
    (first,) = await diagnostics(client, uri)
    assert first.range == rng(8, 0, 8, 10)
    assert first.message == "unknown key 'enviroment' (did you mean 'environment'?)"
    assert first.severity == types.DiagnosticSeverity.Error and first.code == "unknown-key"

    fixed = KIT.replace("enviroment", "environment").replace("kind: mixin", "kind: mixn")
    started = time.monotonic()
    change(client, uri, 2, fixed)
    (second,) = await diagnostics(client, uri)
    assert time.monotonic() - started < 1.0  # "within 1 s of didChange"
    assert second.range == rng(1, 6, 1, 10)
    assert "mixn" in second.message and "mixin" in second.message

    change(client, uri, 3, fixed.replace("kind: mixn", "kind: mixin"))
    assert await diagnostics(client, uri) == []


async def test_broken_yaml_is_one_positioned_error(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "k" / "spec.yaml", 'schemaVersion: "2"\nkind: [mixin\n')
    (diag,) = await diagnostics(client, uri)
    assert diag.message.startswith("invalid YAML") and diag.code == "yaml"
    assert diag.range.start.line >= 1


async def test_other_yaml_files_are_left_alone(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "compose.yaml", "services: {web: {image: x}}\n")
    marker = open_doc(client, tmp_path / "m" / "spec.yaml", "schemaVersion: 9\n")
    await diagnostics(client, marker)  # published after the first document was handled
    assert uri not in client.diagnostics


async def test_completion_of_keys_and_values(client: LanguageClient, tmp_path: Path) -> None:
    text = 'schemaVersion: "2"\nkind: \nname: x\npermissions:\n  net\n'
    uri = open_doc(client, tmp_path / "c" / "spec.yaml", text)
    await diagnostics(client, uri)

    async def labels(line: int, col: int) -> list[str]:
        result = await client.text_document_completion_async(
            types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(line, col))
        )
        assert isinstance(result, types.CompletionList)
        return [i.label for i in result.items]

    assert await labels(1, 6) == ["sandbox", "mixin"]
    assert "network" in await labels(4, 5)
    top = await labels(5, 0)
    assert "environment" in top and "credentials" in top
    assert "kind" not in top and "name" not in top  # already there


async def test_hover_and_outline(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "h" / "spec.yaml", KIT.replace("enviroment", "environment"))
    await diagnostics(client, uri)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(1, 2))
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "sandbox (an agent) or mixin (adds to one)." in hover.contents.value
    assert "`sandbox`, `mixin`" in hover.contents.value
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(types.TextDocumentIdentifier(uri))
    )
    assert symbols is not None
    names = [s.name for s in symbols if isinstance(s, types.DocumentSymbol)]
    assert names == ["schemaVersion", "kind", "name", "permissions", "environment"]
    permissions = next(s for s in symbols if s.name == "permissions")
    assert isinstance(permissions, types.DocumentSymbol) and permissions.children
    allow = permissions.children[0].children[0]  # type: ignore[index]
    assert allow.name == "allow" and allow.detail == "1 item"
    assert allow.children[0].name == "api.example.com"  # type: ignore[index]


async def actions(client: LanguageClient, uri: str, diags: list[types.Diagnostic]) -> list[Any]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            rng(0, 0, 0, 0),
            types.CodeActionContext(diagnostics=diags),
        )
    )
    return list(result or [])


async def test_quick_fixes(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "q" / "spec.yaml", KIT)
    diags = await diagnostics(client, uri)
    (fix,) = [a for a in await actions(client, uri, diags) if a.title.startswith("Change")]
    assert fix.title == "Change to 'environment'"
    (edit,) = fix.edit.changes[uri]
    assert edit.range == rng(8, 0, 8, 10) and edit.new_text == "environment"

    blocked = types.Diagnostic(
        range=rng(5, 2, 5, 9),
        message="3 requests to new.example.org blocked",
        code="blocked-host",
        data={"host": "new.example.org"},
    )
    (allow,) = [a for a in await actions(client, uri, [blocked]) if a.title.startswith("Allow")]
    (insert,) = allow.edit.changes[uri]
    assert insert.range == rng(8, 0, 8, 0)
    assert insert.new_text == "      - new.example.org\n"  # as the list writes its items


async def test_migrate_a_v1_kit(client: LanguageClient) -> None:
    spec = CORPUS / "v1-mixin-deepseek-creds" / "spec.yaml"
    uri = open_doc(client, spec, spec.read_text())
    await diagnostics(client, uri)
    (migrate,) = [a for a in await actions(client, uri, []) if "Migrate" in a.title]
    (edit,) = migrate.edit.changes[uri]
    assert "schemaVersion: '2'" in edit.new_text and "api.deepseek.com" in edit.new_text


async def test_validate_and_new_kit_commands(client: LanguageClient, tmp_path: Path) -> None:
    applied: list[types.WorkspaceEdit] = []

    @client.feature(types.WORKSPACE_APPLY_EDIT)  # type: ignore[untyped-decorator]
    def apply_edit(
        ls: LanguageClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        applied.append(params.edit)
        for change in params.edit.document_changes or []:
            if isinstance(change, types.CreateFile):
                path = Path(change.uri.removeprefix("file://"))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif isinstance(change, types.TextDocumentEdit):
                path = Path(change.text_document.uri.removeprefix("file://"))
                edit = change.edits[0]
                assert isinstance(edit, types.TextEdit)
                path.write_text(path.read_text() + edit.new_text)
        return types.ApplyWorkspaceEditResult(applied=True)

    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("sandkit.newKit", [{"folder": str(tmp_path), "name": "tools"}])
    )
    spec = tmp_path / "tools" / "spec.yaml"
    assert result == {"uri": spec.as_uri()} and applied
    valid = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("sandkit.validateKit", [{"path": str(spec)}])
    )
    assert valid == {"valid": True, "issues": []}

    spec.write_text(spec.read_text().replace("kind: mixin", "kind: mix"))
    invalid = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("sandkit.validateKit", [{"path": str(spec)}])
    )
    assert invalid is not None and invalid["valid"] is False
    assert invalid["issues"][0]["range"] == {"start": [1, 6], "end": [1, 9]}

    with pytest.raises(Exception, match="exists already"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                "sandkit.newKit", [{"folder": str(tmp_path), "name": "tools"}]
            )
        )


MIXIN = """\
schemaVersion: "2"
kind: mixin
name: {name}
credentials:
  - service: shared
    apiKey:
      name: SHARED_KEY
      proxyManaged: true
      inject: [{{domain: api.example.com, header: Authorization, format: "Bearer %s"}}]
"""


async def test_composition_errors_when_the_workspace_names_the_kit(
    client: LanguageClient, tmp_path: Path
) -> None:
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.yaml").write_text(MIXIN.format(name=name))
    (tmp_path / ".sandkit.yaml").write_text("agent: shell\nkits: [./first, ./second]\n")
    spec = tmp_path / "second" / "spec.yaml"
    uri = open_doc(client, spec, spec.read_text())
    for _ in range(50):
        found = [d for d in client.diagnostics.get(uri, []) if d.code == "compose"]
        if found:
            break
        await asyncio.sleep(0.1)
    assert len(found) == 1, [d.message for d in found]
    (diag,) = found
    assert diag.code == "compose" and "shared" in diag.message, diag.message
    assert diag.range.start.line == 4  # the second kit's `- service: shared`
