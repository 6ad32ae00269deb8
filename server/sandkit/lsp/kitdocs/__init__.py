"""Kits as a language: diagnostics (debounced) with the kit engine's exact ranges,
completion of keys and values by YAML path, hover, outline, and quick fixes."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sandkit.kits.issues import KitIssue, Severity, Span
from sandkit.lsp.kitdocs.analysis import Analysis, analyze, is_kit_document
from sandkit.lsp.kitdocs.cursor import (
    cursor_at,
    describe,
    field_at,
    keys_at,
    schema_version,
    values_for,
)
from sandkit.lsp.kitdocs.edits import Insert, add_allowed_host
from sandkit.lsp.kitdocs.symbols import outline, to_range

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer

__all__ = ["KitDocuments", "actions", "insert_edit", "outline", "register", "to_range"]
SOURCE = "kit"


def to_diagnostic(issue: KitIssue) -> types.Diagnostic:
    return types.Diagnostic(
        range=to_range(issue.span),
        message=issue.message,
        severity=(
            types.DiagnosticSeverity.Error
            if issue.severity is Severity.ERROR
            else types.DiagnosticSeverity.Warning
        ),
        code=issue.code,
        source="sandkit",
        data={"suggestion": issue.suggestion} if issue.suggestion else None,
    )


def insert_edit(text: str, insert: Insert) -> types.TextEdit:
    lines = text.splitlines(keepends=True)
    new_text = insert.text
    if insert.line >= len(lines) and lines and not lines[-1].endswith("\n"):
        new_text = "\n" + new_text  # the file does not end with a newline
    position = types.Position(insert.line, insert.column)
    return types.TextEdit(types.Range(position, position), new_text)


class KitDocuments:
    def __init__(self, server: SandkitServer) -> None:
        self.server = server
        self.analyses: dict[str, Analysis] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def changed(self, uri: str, immediate: bool = False) -> None:
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        delay = self.server.settings.debounce_ms / 1000
        if immediate or delay <= 0:
            self.check(uri)
        else:  # typing: check once the keys stop for a moment
            self._timers[uri] = asyncio.get_running_loop().call_later(delay, self.check, uri)

    def check(self, uri: str) -> Analysis | None:
        self._timers.pop(uri, None)
        doc = self.server.workspace.get_text_document(uri)
        if not is_kit_document(doc.path, doc.source):
            self.analyses.pop(uri, None)
            return None
        analysis = analyze(doc.source, doc.path)
        self.analyses[uri] = analysis
        self.server.publish(uri, SOURCE, [to_diagnostic(i) for i in analysis.issues])
        return analysis

    async def compose_check(self, uri: str) -> None:
        """When the folder's .sandkit.yaml names this kit, compose the sandbox it describes
        (from the files on disk, so on open and save) and show the problems that belong
        here: a duplicate credential service, an arg no kit declares, a conflict."""
        from sandkit.errors import SandkitError
        from sandkit.hostconfig import registry_args
        from sandkit.kits import resolve
        from sandkit.kits.builtin import looks_like_path
        from sandkit.kits.issues import KitError
        from sandkit.lsp.workspace import find_workspace_file, workspace_defaults

        doc = self.server.workspace.get_text_document(uri)
        analysis = self.analyses.get(uri)
        if analysis is None:  # not a kit
            return
        found: list[types.Diagnostic] = []
        path = Path(doc.path).resolve()
        settings = find_workspace_file(path.parent)
        if analysis.loaded is not None and settings is not None:
            try:
                defaults = workspace_defaults(settings.parent)
            except SandkitError:
                defaults = {}
            agent = str(defaults.get("agent") or self.server.settings.default_agent)
            kits = [str(k) for k in defaults.get("kits") or []]
            named = {
                Path(r).resolve() for r in (agent, *kits) if looks_like_path(r) or Path(r).exists()
            }
            if path in named or path.parent in named:
                try:
                    await asyncio.to_thread(
                        resolve,
                        agent,
                        kits,
                        {str(k): str(v) for k, v in (defaults.get("kitArgs") or {}).items()},
                        defaults=registry_args(),
                    )
                except KitError as exc:
                    for issue in exc.issues:
                        diag = to_diagnostic(issue)
                        if _same_file(issue.file, path):
                            found.append(diag)
                        else:  # about another kit or an arg: shown at the top, said so
                            diag.range = to_range(Span.point())
                            diag.message = f"composing {settings.name}: {issue.format()}"
                            found.append(diag)
                except SandkitError as exc:
                    found.append(
                        types.Diagnostic(
                            range=to_range(Span.point()),
                            message=f"composing {settings.name}: {exc}",
                            source="sandkit",
                            code="compose",
                        )
                    )
        if self.server.diagnostics.get(uri, {}).get("compose", []) != found:  # no echo
            self.server.publish(uri, "compose", found)

    def closed(self, uri: str) -> None:
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        self.analyses.pop(uri, None)
        self.server.publish(uri, SOURCE, [])

    def analysis(self, uri: str) -> Analysis | None:
        return self.analyses.get(uri) or self.check(uri)


def register(server: SandkitServer) -> None:
    docs = KitDocuments(server)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: SandkitServer, params: types.DidOpenTextDocumentParams) -> None:
        docs.changed(params.text_document.uri, immediate=True)
        await docs.compose_check(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: SandkitServer, params: types.DidChangeTextDocumentParams) -> None:
        docs.changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: SandkitServer, params: types.DidSaveTextDocumentParams) -> None:
        docs.changed(params.text_document.uri, immediate=True)
        await docs.compose_check(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: SandkitServer, params: types.DidCloseTextDocumentParams) -> None:
        docs.closed(params.text_document.uri)

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[" ", ":"])
    )
    def completion(
        ls: SandkitServer, params: types.CompletionParams
    ) -> types.CompletionList | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        if not is_kit_document(doc.path, doc.source):
            return None
        return complete(
            doc.source, params.position, docs.analyses.get(doc.uri), _markdown(ls, "completion")
        )

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: SandkitServer, params: types.HoverParams) -> types.Hover | None:
        analysis = docs.analysis(params.text_document.uri)
        if analysis is None or analysis.located is None:
            return None
        return hover_at(analysis, params.position, _markdown(ls, "hover"))

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(
        ls: SandkitServer, params: types.DocumentSymbolParams
    ) -> list[types.DocumentSymbol] | None:
        analysis = docs.analysis(params.text_document.uri)
        if analysis is None or analysis.located is None:
            return None
        return outline(analysis.located)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[
                types.CodeActionKind.QuickFix,
                types.CodeActionKind.RefactorRewrite,
            ]
        ),
    )
    def code_actions(
        ls: SandkitServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        if not is_kit_document(doc.path, doc.source):
            return None
        return actions(doc.uri, doc.source, params.context.diagnostics, docs.analysis(doc.uri))


def _same_file(name: str, path: Path) -> bool:
    try:
        return Path(name).resolve() == path
    except (OSError, ValueError):
        return False


# -- completion ---------------------------------------------------------------------------
def _markdown(ls: SandkitServer, feature: str) -> bool:
    """Whether the client renders Markdown in completion documentation or hovers."""
    caps = ls.client_capabilities.text_document
    formats: Sequence[types.MarkupKind] | None = None
    if caps is not None and feature == "completion" and caps.completion is not None:
        item = caps.completion.completion_item
        formats = item.documentation_format if item is not None else None
    elif caps is not None and feature == "hover" and caps.hover is not None:
        formats = caps.hover.content_format
    return types.MarkupKind.Markdown in (formats or ())


def _markup(text: str, markdown: bool) -> types.MarkupContent:
    if markdown:
        return types.MarkupContent(types.MarkupKind.Markdown, text)
    return types.MarkupContent(types.MarkupKind.PlainText, text.replace("**", "").replace("`", ""))


def complete(
    text: str, position: types.Position, analysis: Analysis | None, markdown: bool = True
) -> types.CompletionList:
    cursor = cursor_at(text, position.line, position.character)
    version = schema_version(text)
    span = types.Range(types.Position(position.line, cursor.start), position)
    items: list[types.CompletionItem] = []
    if cursor.in_value:
        info = field_at(version, cursor.path)
        if cursor.path == ("schemaVersion",):
            values = ["1", "2", "3"]
        else:
            values = values_for(info) if info is not None else []
        for value in values:
            shown = f'"{value}"' if cursor.path == ("schemaVersion",) else value
            items.append(
                types.CompletionItem(
                    label=shown,
                    kind=types.CompletionItemKind.EnumMember,
                    text_edit=types.TextEdit(span, shown),
                )
            )
    else:
        present = _present_keys(analysis, cursor.path) if analysis else set()
        for key, info in keys_at(version, cursor.path):
            if key in present:
                continue
            items.append(
                types.CompletionItem(
                    label=key,
                    kind=types.CompletionItemKind.Property,
                    detail="required" if info.is_required() else None,
                    documentation=_markup(describe(info, key), markdown),
                    text_edit=types.TextEdit(span, f"{key}: "),
                )
            )
    return types.CompletionList(is_incomplete=False, items=items)


def _present_keys(analysis: Analysis, path: tuple[str | int, ...]) -> set[str]:
    if analysis.located is None:
        return set()
    node: Any = analysis.located.data
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return set()
    return set(node) if isinstance(node, dict) else set()


# -- hover ----------------------------------------------------------------------------------
def _contains(span: Span, position: types.Position) -> bool:
    start = (span.line, span.column)
    end = (span.end_line, span.end_column)
    return start <= (position.line, position.character) <= end


def hover_at(
    analysis: Analysis, position: types.Position, markdown: bool = True
) -> types.Hover | None:
    assert analysis.located is not None
    for path, span in analysis.located.keys.items():
        if not _contains(span, position):
            continue
        info = field_at(analysis.version, path)
        if info is None:
            return None
        text = describe(info, str(path[-1]))
        return types.Hover(_markup(text, markdown), range=to_range(span))
    return None


# -- code actions ---------------------------------------------------------------------------
def actions(
    uri: str, text: str, diagnostics: Sequence[types.Diagnostic], analysis: Analysis | None
) -> list[types.CodeAction]:
    out: list[types.CodeAction] = []
    for diag in diagnostics:
        data = diag.data if isinstance(diag.data, dict) else {}
        if diag.code == "unknown-key" and data.get("suggestion"):
            suggestion = str(data["suggestion"])
            out.append(
                types.CodeAction(
                    title=f"Change to '{suggestion}'",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    is_preferred=True,
                    edit=types.WorkspaceEdit(
                        changes={uri: [types.TextEdit(diag.range, suggestion)]}
                    ),
                )
            )
        if diag.code == "blocked-host" and data.get("host"):
            host = str(data["host"])
            insert = add_allowed_host(text, host)
            if insert is not None:
                out.append(
                    types.CodeAction(
                        title=f"Allow {host} in this kit",
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=[diag],
                        edit=types.WorkspaceEdit(changes={uri: [insert_edit(text, insert)]}),
                    )
                )
    if analysis is not None and analysis.version == "1" and analysis.loaded is not None:
        out.append(migrate_action(uri, text, analysis))
    return out


def migrate_action(uri: str, text: str, analysis: Analysis) -> types.CodeAction:
    from sandkit.kits.migrate import migrate
    from sandkit.yamlout import dump_yaml

    assert analysis.loaded is not None
    data, notes = migrate(analysis.loaded)
    out = io.StringIO()
    for note in notes:
        out.write(f"# {note}\n")
    dump_yaml(data, out)
    lines = text.splitlines()
    end = types.Position(len(lines), 0)
    return types.CodeAction(
        title="Migrate this kit to schemaVersion 2",
        kind=types.CodeActionKind.RefactorRewrite,
        edit=types.WorkspaceEdit(
            changes={uri: [types.TextEdit(types.Range(types.Position(0, 0), end), out.getvalue())]}
        ),
    )
