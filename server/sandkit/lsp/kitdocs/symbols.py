"""The outline of a kit document (document symbols), and spans as LSP ranges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sandkit.kits.issues import Span

if TYPE_CHECKING:
    from sandkit.kits.yamlpos import Located


def to_range(span: Span) -> types.Range:
    return types.Range(
        types.Position(span.line, span.column), types.Position(span.end_line, span.end_column)
    )


# -- outline --------------------------------------------------------------------------------
ITEM_NAMES = ("name", "service", "path", "command", "domain", "type", "description")


def outline(located: Located) -> list[types.DocumentSymbol]:
    def build(path: tuple[str | int, ...], value: Any) -> list[types.DocumentSymbol]:
        out = []
        if isinstance(value, dict):
            entries: list[tuple[tuple[str | int, ...], str, Any]] = [
                ((*path, k), str(k), v) for k, v in value.items()
            ]
        elif isinstance(value, list):
            entries = [((*path, i), _item_name(v, i), v) for i, v in enumerate(value)]
        else:
            return []
        for child, name, item in entries:
            head = located.keys.get(child) or located.values[child]
            body = located.values.get(child, head)
            whole = Span(head.line, head.column, body.end_line, body.end_column)
            out.append(
                types.DocumentSymbol(
                    name=name,
                    kind=_kind(item),
                    range=to_range(whole),
                    selection_range=to_range(head),
                    detail=_detail(item),
                    children=build(child, item) or None,
                )
            )
        return out

    return build((), located.data)


def _item_name(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for key in ITEM_NAMES:
            if isinstance(item.get(key), str | list):
                text = item[key] if isinstance(item[key], str) else " ".join(map(str, item[key]))
                first = text.strip().splitlines()[0] if text.strip() else ""
                return first[:60] or f"[{index}]"
    if isinstance(item, str | int | float):
        return str(item)
    return f"[{index}]"


def _kind(value: Any) -> types.SymbolKind:
    if isinstance(value, dict):
        return types.SymbolKind.Object
    if isinstance(value, list):
        return types.SymbolKind.Array
    if isinstance(value, bool):
        return types.SymbolKind.Boolean
    if isinstance(value, int | float):
        return types.SymbolKind.Number
    return types.SymbolKind.String


def _detail(value: Any) -> str | None:
    if isinstance(value, str):
        first = value.strip().splitlines()[0] if value.strip() else ""
        return first[:60]
    if isinstance(value, list):
        return f"{len(value)} item{'s' if len(value) != 1 else ''}"
    return None
