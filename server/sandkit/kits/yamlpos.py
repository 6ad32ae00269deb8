"""YAML text to plain Python data plus the position of every node.

Kits are validated on plain data (dicts, lists, scalars) so that pydantic can do the
work; positions live beside the data in a map keyed by the path to each node, so every
problem can point at the exact key or value that caused it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sandkit.kits.issues import KitError, Span

Path = tuple[str | int, ...]

# Expanded aliases can make a tiny document huge ("billion laughs"); no kit comes near this.
MAX_NODES = 200_000
# Composing recurses once per level: ~3,000 levels exhaust Python's stack and ~30,000 crash
# libyaml's composer (a segfault). Kits are a few levels deep; nothing needs more than this.
MAX_DEPTH = 100

_T = "tag:yaml.org,2002:"


class YamlInt(int):
    """An int that remembers how it was written, so `version: 010` stays "010" as text."""

    raw: str

    def __new__(cls, value: int, raw: str) -> YamlInt:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


class YamlFloat(float):
    """A float that remembers how it was written, so `version: 1.10` stays "1.10"."""

    raw: str

    def __new__(cls, value: float, raw: str) -> YamlFloat:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


@dataclass
class Located:
    """Plain data from one YAML document and where each node of it was written."""

    data: Any
    values: dict[Path, Span] = field(default_factory=dict)
    keys: dict[Path, Span] = field(default_factory=dict)

    def value_span(self, path: Path) -> Span:
        """The span of the node at ``path``, or of its nearest ancestor that has one."""
        for p in _ancestors(path):
            if p in self.values:
                return self.values[p]
        return Span.point()

    def key_span(self, path: Path) -> Span:
        """The span of the key naming ``path`` (the value's span for list items)."""
        for p in _ancestors(path):
            if p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
        return Span.point()


def _ancestors(path: Path) -> Iterator[Path]:
    for n in range(len(path), -1, -1):
        yield path[:n]


def _span(node: Node) -> Span:
    s, e = node.start_mark, node.end_mark
    return Span(s.line, s.column, e.line, e.column)


def _tag(node: Node) -> str:
    tag = node.tag
    return str(getattr(tag, "value", tag) or "")


def parse(text: str, file: str) -> Located:
    """Parse one YAML document. Raises :class:`KitError` with a position on any problem."""
    check_depth(text, file)
    try:
        # libyaml (ruamel.yaml.clib) composes ~9x faster than the pure parser.
        root = YAML(typ="safe", pure=False).compose(text)
    except (YAMLError, ValueError, RecursionError):
        # The pure parser words its errors better ("found undefined alias 'x'"): ask it.
        root = _compose_pure(text, file)
    located = Located(data=None)
    if root is None:
        return located
    builder = _Builder(file, located)
    located.data = builder.build(root, ())
    return located


def _too_deep(file: str, span: Span) -> KitError:
    return KitError.at(
        file,
        span,
        f"YAML nested more than {MAX_DEPTH} levels deep here: a kit never needs that many; "
        "flatten this part (or fix unbalanced brackets)",
        code="yaml",
    )


def check_depth(text: str, file: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before anything recurses over the document.

    libyaml's event parser is a loop, not a recursion, and stops reading at the first level
    too many, so a 60 KB ``[[[[…`` costs microseconds here. Malformed YAML is left to the
    composer, which reports it (it fails at the same place, before going any deeper)."""
    depth = 0
    try:
        for event in YAML(typ="safe", pure=False).parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise _too_deep(file, Span.point(mark.line, mark.column))
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except (YAMLError, ValueError):
        return


def _compose_pure(text: str, file: str) -> Node | None:
    try:
        return YAML(typ="safe", pure=True).compose(text)  # type: ignore[no-any-return]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span.point(mark.line, mark.column) if mark else Span.point()
        problem = (exc.problem or exc.context or "invalid YAML").splitlines()[0]
        raise KitError.at(file, span, f"invalid YAML: {problem}", code="yaml") from None
    except (YAMLError, ValueError, RecursionError) as exc:
        first = (str(exc).splitlines() or ["unreadable"])[0]
        raise KitError.at(file, Span.point(), f"invalid YAML: {first}", code="yaml") from None


class _Builder:
    def __init__(self, file: str, located: Located) -> None:
        self.file = file
        self.located = located
        self.count = 0
        self.active: set[int] = set()

    def fail(self, node: Node, message: str) -> KitError:
        return KitError.at(self.file, _span(node), message, code="yaml")

    def build(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(
                node, f"document too large (more than {MAX_NODES} nodes with aliases expanded)"
            )
        self.located.values[path] = _span(node)
        if len(path) > MAX_DEPTH:  # aliases nest what the text did not (check_depth's view)
            raise _too_deep(self.file, _span(node))
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if id(node) in self.active:
            raise self.fail(node, "an alias refers to a node that contains it (recursive YAML)")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            raise self.fail(node, "unsupported YAML node")
        finally:
            self.active.discard(id(node))

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if _tag(key_node) == _T + "merge":
                raise self.fail(
                    key_node, "YAML merge keys (<<) are not supported in kits: write the keys out"
                )
            if not isinstance(key_node, ScalarNode) or _tag(key_node) not in (_T + "str",):
                raise self.fail(key_node, "keys must be plain strings; quote this key")
            key = str(key_node.value)
            if key in out:
                raise self.fail(key_node, f"duplicate key '{key}'")
            self.located.keys[(*path, key)] = _span(key_node)
            out[key] = self.build(value_node, (*path, key))
        return out

    def scalar(self, node: ScalarNode) -> Any:
        tag, raw = _tag(node), str(node.value)
        if tag == _T + "str":
            return raw
        if tag == _T + "null":
            return None
        if tag == _T + "bool":
            return raw.lower() == "true"
        if tag == _T + "int":
            return YamlInt(_parse_int(raw), raw)
        if tag == _T + "float":
            return YamlFloat(_parse_float(raw), raw)
        if tag == _T + "timestamp":
            return raw  # kits never want dates; keep the text as written
        raise self.fail(node, f"unsupported YAML tag '{tag}'; remove the tag or quote the value")


def _parse_int(raw: str) -> int:
    text = raw.replace("_", "")
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if text.lower().startswith(prefix):
            return sign * int(text[2:], base)
    return sign * int(text, 10)


def _parse_float(raw: str) -> float:
    text = raw.replace("_", "").lower()
    if text.lstrip("+-") in (".inf",):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)
