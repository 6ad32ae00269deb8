"""Where the cursor is in a kit, by YAML path, and what the spec models say about it.

Pure: text and positions in, paths and field facts out. Completion runs on text that is
being typed and often does not parse, so the path comes from indentation, not a parser."""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sandkit.kits import spec_v1, spec_v2, spec_v3, validation
from sandkit.kits.validation import annotation_options

Path = tuple[str | int, ...]
MODELS: dict[str, type[BaseModel]] = {"1": spec_v1.KitV1, "2": spec_v2.KitV2, "3": spec_v3.KitV3}
_VERSION = re.compile(r"""^schemaVersion:\s*["']?([123])["']?\s*(?:#.*)?$""", re.M)
_LINE = re.compile(r"^(\s*)((?:-\s+)*)(.*)$")
_KEY = re.compile(r"""^(["']?)([A-Za-z0-9_.-]+)\1\s*:(?:\s|$)""")


def schema_version(text: str) -> str:
    """The document's schemaVersion, "2" when it has none yet (the current format)."""
    found = _VERSION.search(text)
    return found.group(1) if found else "2"


@dataclass(frozen=True)
class Cursor:
    path: Path  # of the mapping the cursor is in (for a key) or of the key (for a value)
    in_value: bool  # after "key:" on this line
    prefix: str  # what is typed so far of the key or value
    start: int  # column where that prefix starts


def cursor_at(text: str, line: int, character: int) -> Cursor:
    lines = text.splitlines()
    current = lines[line][:character] if line < len(lines) else ""
    lead, dashes, content = _LINE.match(current).groups()  # type: ignore[union-attr]
    column = len(lead) + len(dashes)
    above = lines[:line]
    path = _list_holder(above, len(lead)) if dashes else _parents(above, column)
    key = _KEY.match(content)
    if key is not None:
        value = content[key.end() :].lstrip()
        return Cursor((*path, key.group(2)), True, value, len(current) - len(value))
    return Cursor(path, False, content, column)


def _lines_up(above: list[str]) -> typing.Iterator[tuple[int, str, str, str]]:
    """(index, indentation, dashes, content) of each meaningful line, nearest first."""
    for index in range(len(above) - 1, -1, -1):
        raw = above[index].rstrip()
        if raw.strip() and not raw.strip().startswith("#"):
            lead, dashes, content = _LINE.match(raw).groups()  # type: ignore[union-attr]
            yield index, lead, dashes, content


def _list_holder(above: list[str], lead: int) -> Path:
    """Path of a new list item written with its dash at column ``lead``: the key that holds
    the list (at or left of the dash), then the item."""
    for index, indent, dashes, content in _lines_up(above):
        key = _KEY.match(content)
        start = len(indent) + len(dashes)
        if dashes and len(indent) < lead:  # an item of an outer list holds our list
            holder = (key.group(2),) if key is not None and start <= lead else ()
            return (*_parents(above[:index], len(indent) + 1), 0, *holder, 0)
        if not dashes and start <= lead and key is not None:
            return (*_parents(above[:index], start), key.group(2), 0)
    return (0,)


def _parents(above: list[str], column: int) -> Path:
    """The keys (and list items) enclosing a key written at ``column``."""
    path: list[str | int] = []
    target, in_item = column, False
    for _, lead, dashes, content in _lines_up(above):
        if target == 0 and not in_item:
            break
        start = len(lead) + len(dashes)
        key = _KEY.match(content)
        if dashes and len(lead) < target and start <= target and not in_item:
            if start < target and key is not None:  # "- key:" whose value holds us
                path.append(key.group(2))
            path.append(0)
            # The list's key sits left of the dash, or in the same column (compact style).
            target, in_item = len(lead), True
        elif not dashes and key is not None and (start < target or (in_item and start == target)):
            path.append(key.group(2))
            target, in_item = start, False
    return tuple(reversed(path))


# -- the spec models (walked by the kit engine's own helpers) ---------------------------------
def model_at(version: str, path: Path) -> type[BaseModel] | None:
    """The model that validates the mapping at ``path``, if it is one."""
    return validation.model_at(MODELS.get(version, spec_v2.KitV2), path)


def field_at(version: str, path: Path) -> FieldInfo | None:
    """The field the key at ``path`` names."""
    if not path or not isinstance(path[-1], str):
        return None
    parent = model_at(version, path[:-1])
    return parent.model_fields.get(path[-1]) if parent is not None else None


def keys_at(version: str, path: Path) -> list[tuple[str, FieldInfo]]:
    model = model_at(version, path)
    return list(model.model_fields.items()) if model is not None else []


def values_for(info: FieldInfo) -> list[str]:
    """The values a field takes when there is a closed set of them (enums, booleans)."""
    out: list[str] = []
    for option in annotation_options(info.annotation):
        if typing.get_origin(option) is Literal:
            out += [str(v) for v in typing.get_args(option) if v != ""]
        elif option is bool:
            out += ["true", "false"]
    return list(dict.fromkeys(out))


def describe(info: FieldInfo, key: str) -> str:
    """Hover text: the field's description and the shape of its value."""
    shape = _shape(info.annotation)
    required = " (required)" if info.is_required() else ""
    text = f"**{key}**: {shape}{required}"
    if info.description:
        text += f"\n\n{info.description}"
    values = values_for(info)
    if values and shape != "true or false":
        text += "\n\nOne of: " + ", ".join(f"`{v}`" for v in values)
    return text


def _shape(annotation: Any) -> str:
    names = []
    for option in annotation_options(annotation):
        origin = typing.get_origin(option)
        if option is type(None):
            continue
        if option is bool:
            names.append("true or false")
        elif option in (int, float):
            names.append("a number")
        elif option is str or origin is Literal:
            names.append("a string")
        elif origin in (list, tuple):
            names.append("a list")
        elif origin is dict or (isinstance(option, type) and issubclass(option, BaseModel)):
            names.append("a mapping")
        else:
            names.append("a value")
    return " or ".join(dict.fromkeys(names)) or "a value"
