"""vscode-client/src/protocol.ts mirrors sandkit.lsp.protocol: the same names with the same
values, one interface per payload with the same fields, optional where the server's are,
of the same types, and the same map of each message to what it carries."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, NotRequired, is_typeddict

from sandkit.lsp import protocol

TS = Path(__file__).resolve().parents[2] / "vscode-client" / "src" / "protocol.ts"
MAPS = {
    "Commands": protocol.COMMANDS,
    "ServerNotifications": protocol.SERVER_NOTIFICATIONS,
    "ClientNotifications": protocol.CLIENT_NOTIFICATIONS,
}


def ts_type(hint: Any) -> str:
    """A Python annotation as protocol.ts writes it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "null"
    if hint in (str, int, float, bool):
        return {str: "string", int: "number", float: "number", bool: "boolean"}[hint]
    if is_typeddict(hint):
        return str(hint.__name__)
    if origin in (types.UnionType, typing.Union):
        return " | ".join(ts_type(a) for a in args)
    if origin is Literal:
        return " | ".join(f'"{a}"' for a in args)
    if origin is list:
        inner = ts_type(args[0])
        return f"({inner})[]" if "|" in inner else f"{inner}[]"
    if origin is dict:
        return f"Record<{ts_type(args[0])}, {ts_type(args[1])}>"
    if isinstance(hint, tuple):  # a command with one result or another
        return " | ".join(ts_type(h) for h in hint)
    raise AssertionError(f"no TypeScript for {hint!r}")


def python_fields(cls: type) -> list[str]:
    fields = []
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        optional = typing.get_origin(hint) is NotRequired
        if optional:
            hint = typing.get_args(hint)[0]
        fields.append(f"{name}{'?' if optional else ''}: {ts_type(hint)}")
    return fields


def ts_interfaces(text: str) -> dict[str, list[str]]:
    """Each exported interface's members, as `name: type` (comments and layout dropped)."""
    text = re.sub(r"//[^\n]*", "", text)
    found = {}
    for match in re.finditer(r"export interface (\w+) \{", text):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[match.end() : i - 1]
        members, depth, start = [], 0, 0
        for j, char in enumerate(body):
            depth += {"{": 1, "}": -1}.get(char, 0)
            if char == ";" and depth == 0:
                members.append(" ".join(body[start:j].split()))
                start = j + 1
        found[match[1]] = members
    return found


def python_constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(protocol).items()
        if name.isupper() and isinstance(value, str)
    }


def test_the_same_names_with_the_same_values() -> None:
    ts = dict(re.findall(r'^export const (\w+) = "([^"]*)";$', TS.read_text(), re.MULTILINE))
    assert ts == python_constants()


def test_every_payload_has_the_same_fields_of_the_same_types() -> None:
    ts = ts_interfaces(TS.read_text())
    payloads = {
        name: value
        for name, value in vars(protocol).items()
        if is_typeddict(value) and value.__module__ == protocol.__name__
    }
    assert sorted(ts) == sorted([*payloads, *MAPS])
    for name, cls in payloads.items():
        assert ts[name] == python_fields(cls), name
    # e.g. the push carries exactly the rows sandkit.list answers
    assert protocol.COMMANDS[protocol.LIST][1] == list[protocol.SandboxRow]
    assert ts["SandboxesParams"] == ["sandboxes: SandboxRow[]"]


def test_every_message_carries_the_same_payload() -> None:
    ts = ts_interfaces(TS.read_text())
    by_value = {value: name for name, value in python_constants().items()}
    expected = {
        "Commands": [
            f"[{by_value[method]}]: {{ params: {ts_type(params)}; result: {ts_type(result)} }}"
            for method, (params, result) in protocol.COMMANDS.items()
        ],
        "ServerNotifications": [
            f"[{by_value[method]}]: {ts_type(params)}"
            for method, params in protocol.SERVER_NOTIFICATIONS.items()
        ],
        "ClientNotifications": [
            f"[{by_value[method]}]: {ts_type(params)}"
            for method, params in protocol.CLIENT_NOTIFICATIONS.items()
        ],
    }
    assert {name: ts[name] for name in MAPS} == expected
