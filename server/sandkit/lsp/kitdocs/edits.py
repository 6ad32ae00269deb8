"""Edits to kit text that keep its comments and layout: the text around the change is
left exactly as written (a YAML round trip would reflow it). Pure: text in, edits out.

The host to allow comes from the agent's request (an approval prompt, a blocked-request
diagnostic), so it is untrusted text: it must be one host name or address, it is written
as a scalar that ruamel's round-trip emitter renders (quoted where YAML would read it as
something else), and the edited kit is read back: unless the only change is that one new
item in the allow list, no edit is offered."""

from __future__ import annotations

import io
from dataclasses import dataclass

from ruamel.yaml import YAML

from sandkit.kits.issues import KitError, Span
from sandkit.kits.validation import node_at
from sandkit.kits.yamlpos import Located, parse
from sandkit.lsp.kitdocs.cursor import Path, schema_version
from sandkit.net.approvals import exact_host

NETWORK_POLICY = ("com.docker.sandbox/network-policy@1", "com.docker.sandbox/network-policy@2")


@dataclass(frozen=True)
class Insert:
    line: int  # insert before this line (0-based), at column ``column``
    column: int
    text: str


def allow_list_path(located: Located, version: str) -> tuple[Path, bool]:
    """Where the kit's allowed hosts go, and whether that list exists already."""
    data = located.data if isinstance(located.data, dict) else {}
    if version == "1":
        path: Path = ("network", "allowedDomains")
    elif version == "3":
        caps = data.get("capabilities")
        index = next(
            (
                i
                for i, c in enumerate(caps if isinstance(caps, list) else [])
                if isinstance(c, dict) and c.get("type") in NETWORK_POLICY
            ),
            None,
        )
        if index is None:
            return ("capabilities",), False
        path = ("capabilities", index, "config", "runtime", "allow")
    else:
        path = ("permissions", "network", "allow")
    return path, isinstance(node_at(data, path), list)


def add_allowed_host(text: str, host: str) -> Insert | None:
    """The insertion that allows ``host`` in this kit; None if it is allowed already, if
    ``host`` is not one host name or address (a wildcard, a list, YAML syntax), or if the
    text is not a kit mapping (a person has to fix the YAML first)."""
    try:
        host = exact_host(host)
        located = parse(text, "kit")
    except (ValueError, KitError):
        return None
    insert = _insert(text, located, host)
    if insert is None or not _only_adds(text, insert, host):
        return None
    return insert


def _insert(text: str, located: Located, host: str) -> Insert | None:
    if not isinstance(located.data, dict):
        return None
    version = schema_version(text)
    path, exists = allow_list_path(located, version)
    lines = text.splitlines()
    if exists:
        items = node_at(located.data, path)
        if host in items:
            return None
        return _append_item(located, lines, path, len(items), host)
    if version == "3":
        block = [
            "- type: com.docker.sandbox/network-policy@1",
            "  config:",
            "    runtime:",
            "      allow:",
            f"        - {scalar(host)}",
        ]
        if isinstance(located.data.get("capabilities"), list) and located.data["capabilities"]:
            return _after_list(located, lines, ("capabilities",), block)
        return _at_end(lines, ["capabilities:", *("  " + b for b in block)])
    written = [n for n in range(1, len(path) + 1) if path[:n] in located.keys]
    if written and node_at(located.data, path[: written[-1]]) is None:
        # `network:` or `allow:` written with nothing under it: fill it in, below its key
        n = written[-1]
        key = located.keys[path[:n]]
        indent = key.column + 2
        block = [f"{' ' * (indent + 2 * i)}{k}:" for i, k in enumerate(path[n:])]
        block.append(f"{' ' * (indent + 2 * len(path[n:]))}- {scalar(host)}")
        return Insert(key.line + 1, 0, _join(block))
    # The deepest mapping on the way that exists; the rest of the keys are written out.
    depth = max(n for n in range(len(path)) if isinstance(node_at(located.data, path[:n]), dict))
    if depth + 1 <= len(path) and path[: depth + 1] in located.keys:
        return None  # written, but as something other than a mapping or list: a person decides
    missing = path[depth:]
    if depth == 0:
        block = [f"{'  ' * i}{key}:" for i, key in enumerate(missing)]
        return _at_end(lines, [*block, f"{'  ' * len(missing)}- {scalar(host)}"])
    parent_key = located.keys[path[:depth]]
    indent = parent_key.column + 2
    block = [f"{' ' * (indent + 2 * i)}{key}:" for i, key in enumerate(missing)]
    block.append(f"{' ' * (indent + 2 * len(missing))}- {scalar(host)}")
    return Insert(
        _line_after(located.values[path[:depth]], lines, parent_key.line), 0, _join(block)
    )


def _append_item(located: Located, lines: list[str], path: Path, count: int, host: str) -> Insert:
    whole = located.values[path]
    first_line = lines[whole.line] if whole.line < len(lines) else ""
    if count == 0 or first_line[whole.column : whole.column + 1] == "[":  # flow style: [a, b]
        end_line = lines[whole.end_line]
        close = end_line.rfind("]", 0, whole.end_column)
        sep = ", " if count else ""
        return Insert(whole.end_line, close, f"{sep}{scalar(host, flow=True)}")
    last = located.values[(*path, count - 1)]
    prefix = lines[last.line][: last.column]  # indentation and "- ", as the kit writes them
    return Insert(_line_after(last, lines, last.line), 0, _join([f"{prefix}{scalar(host)}"]))


def scalar(value: str, flow: bool = False) -> str:
    """``value`` as one YAML list item, as ruamel's round-trip emitter writes it: plain
    when YAML reads it back as this string, quoted otherwise ('null', '1.5' ...)."""
    yaml = YAML(typ="rt")
    yaml.default_flow_style = flow
    yaml.width = 4096  # one line, whatever the length
    out = io.StringIO()
    yaml.dump([value], out)
    item = out.getvalue().strip()
    return item[1:-1] if flow else item.removeprefix("- ")


def _only_adds(text: str, insert: Insert, host: str) -> bool:
    """Read the edited kit back: it must hold what the kit held, plus ``host`` as the last
    item of its allow list, and nothing else changed (no second rule, no other key)."""
    try:
        before, after = parse(text, "kit"), parse(apply(text, insert), "kit")
    except KitError:
        return False
    version = schema_version(text)
    path, _ = allow_list_path(after, version)
    items = node_at(after.data, path)
    if not isinstance(items, list) or not items or items[-1] != host:
        return False
    expected = before.data  # a fresh copy, to be changed into what the edit should give
    old_path, _ = allow_list_path(before, version)
    try:
        if version == "3" and old_path == ("capabilities",):  # a new network-policy entry
            entry = {"type": NETWORK_POLICY[0], "config": {"runtime": {"allow": [host]}}}
            caps = expected.get("capabilities")
            expected["capabilities"] = [*(caps if isinstance(caps, list) else []), entry]
        else:
            node = expected
            for step in old_path[:-1]:  # the keys the edit writes out where none were
                if isinstance(node, dict) and node.get(step) is None:
                    node[step] = {}
                node = node[step]
            node[old_path[-1]] = [*(node.get(old_path[-1]) or []), host]
    except (KeyError, IndexError, TypeError, AttributeError):
        return False
    return bool(after.data == expected)


def _after_list(located: Located, lines: list[str], path: Path, block: list[str]) -> Insert:
    items = node_at(located.data, path)
    last = located.values[(*path, len(items) - 1)]
    first = located.values[(*path, 0)]
    prefix = lines[first.line][: first.column - 2]  # the dash column of the list's items
    return Insert(_line_after(last, lines, last.line), 0, _join([prefix + b for b in block]))


def _line_after(span: Span, lines: list[str], floor: int) -> int:
    """The line after a node ends (a block node's end mark sits at the next line's start)."""
    line = span.end_line if span.end_column == 0 else span.end_line + 1
    # Skip back over blank lines and comments that follow the node: insert right after it.
    while line - 1 > floor and line - 1 < len(lines) and not lines[line - 1].strip():
        line -= 1
    return min(line, len(lines))


def _at_end(lines: list[str], block: list[str]) -> Insert:
    return Insert(len(lines), 0, _join(block))


def _join(block: list[str]) -> str:
    return "".join(line + "\n" for line in block)


def apply(text: str, insert: Insert) -> str:
    """The text with ``insert`` applied (what the editor will do with the edit)."""
    lines = text.splitlines(keepends=True)
    if insert.line >= len(lines):
        needs_newline = bool(lines) and not lines[-1].endswith("\n")
        return text + ("\n" if needs_newline else "") + insert.text
    offset = sum(len(line) for line in lines[: insert.line]) + insert.column
    return text[:offset] + insert.text + text[offset:]
