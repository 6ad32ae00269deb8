"""pydantic validation errors → positioned kit issues written for people.

pydantic reports locations as paths through the input; the YAML layer recorded where
every path was written, so each error lands on the exact key or value."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sandkit.kits.issues import KitIssue, Severity
from sandkit.kits.yamlpos import Located, Path

M = TypeVar("M", bound=BaseModel)

# Keys written in another schema version's spelling: the hint says what to write instead.
MOVED_KEYS: dict[str, str] = {
    "allowedDomains": "in schemaVersion 2 this is 'permissions.network.allow'",
    "deniedDomains": "in schemaVersion 2 this is 'permissions.network.deny'",
    "serviceDomains": "in schemaVersion 2 credentials are a 'credentials:' list with apiKey.inject "
    "(`sandkit kit migrate` rewrites a v1 kit)",
    "serviceAuth": "in schemaVersion 2 the header goes in credentials[].apiKey.inject[].header",
    "network": "in schemaVersion 2 network rules go under 'permissions.network'",
    "commands": "in schemaVersion 2 this block is 'setup' (install, startup, files)",
    "initFiles": "in schemaVersion 2 this is 'setup.files'",
    "agent": "in schemaVersion 2 this block is 'sandbox'",
    "memory": "in schemaVersion 2 this is 'agentInstructions.content'",
    "agentContext": "in schemaVersion 2 this is 'agentInstructions.content'",
    "aiFilename": "in schemaVersion 2 this is 'agentInstructions.filename'",
    "proxyManaged": "in schemaVersion 2 this is credentials[].apiKey.proxyManaged",
    "caps": "in schemaVersion 2 network rules go under 'permissions.network'",
    "capabilities": 'capabilities are schemaVersion 3; set schemaVersion: "3" to use them',
    "sourceUrl": "this kit's schema spells it 'sourceURL'",
    "sourceURL": "schemaVersion 3 spells it 'sourceUrl'",
}


@dataclass
class Context:
    """Issues found in one spec file, positioned with that file's YAML positions."""

    file: str
    located: Located
    issues: list[KitIssue] = field(default_factory=list)
    # Values that came from kit args, so an error there can say which arg to fix.
    from_args: dict[Path, list[str]] = field(default_factory=dict)

    def error(
        self,
        path: Path,
        message: str,
        *,
        at_key: bool = False,
        code: str = "invalid",
        suggestion: str | None = None,
        subject: str | None = None,
    ) -> None:
        self._add(path, message, Severity.ERROR, at_key, code, suggestion, subject)

    def warn(self, path: Path, message: str, *, at_key: bool = True, code: str = "warning") -> None:
        self._add(path, message, Severity.WARNING, at_key, code, None)

    def _add(
        self,
        path: Path,
        message: str,
        severity: Severity,
        at_key: bool,
        code: str,
        suggestion: str | None,
        subject: str | None = None,
    ) -> None:
        span = self.located.key_span(path) if at_key else self.located.value_span(path)
        if path in self.from_args and severity is Severity.ERROR:
            names = ", ".join(self.from_args[path])
            message += f" (the value comes from kit arg {names}: check --kit-arg {names}=…)"
        self.issues.append(KitIssue(self.file, span, message, severity, code, suggestion, subject))

    @property
    def failed(self) -> bool:
        return any(i.severity is Severity.ERROR for i in self.issues)

    def validate(self, model: type[M], data: Any, base: Path = ()) -> M | None:
        """Validate ``data`` (found at ``base``) as ``model``; record issues, None on error."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            seen: dict[tuple[Path, bool], list[ErrorDetails]] = {}
            for err in exc.errors(include_url=False):
                seen.setdefault(_data_path(data, err["loc"]), []).append(err)
            for (path, at_key), errors in seen.items():
                # An error about a whole mapping reads best on the key that names it.
                on_mapping = isinstance(node_at(data, path), dict) and bool(path)
                self._report(model, base, path, at_key or on_mapping, errors)
            return None

    def _report(
        self,
        model: type[BaseModel],
        base: Path,
        path: Path,
        at_key: bool,
        errors: list[ErrorDetails],
    ) -> None:
        first = errors[0]
        kind = first["type"]
        full = (*base, *path)
        if kind == "extra_forbidden":
            key = str(path[-1])
            parent = model_at(model, path[:-1])
            message, suggestion = unknown_key_message(key, _keys_of(parent))
            self.error(full, message, at_key=True, code="unknown-key", suggestion=suggestion)
        elif kind == "missing":
            key = str(path[-1])
            self.error(full[:-1], f"missing required key '{key}'", at_key=True, code="missing-key")
        else:
            # A union reports one error per member; say what any of them would accept.
            expected = list(dict.fromkeys(x for x in map(_expected, errors) if x))
            if len(errors) > 1 and expected and len(expected) == len(errors):
                message = f"expected {' or '.join(expected)}, got {_describe(first['input'])}"
            else:
                message = _message(first)
            self.error(full, message, at_key=at_key)


def unknown_key_message(key: str, known: list[str]) -> tuple[str, str | None]:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)", close[0]
    if key in MOVED_KEYS:
        return f"unknown key '{key}': {MOVED_KEYS[key]}", None
    if known:
        return f"unknown key '{key}'; expected one of: {', '.join(known)}", None
    return f"unknown key '{key}'", None


def _data_path(data: Any, loc: tuple[int | str, ...]) -> tuple[Path, bool]:
    """pydantic's loc with union-member tags dropped: only steps that exist in the data.

    The flag is True when the error is about a mapping key rather than its value."""
    path: list[str | int] = []
    node = data
    for i, step in enumerate(loc):
        if step == "[key]":
            return tuple(path), True
        if isinstance(node, dict) and isinstance(step, str):
            if step in node:
                path.append(step)
                node = node[step]
            elif i == len(loc) - 1:
                path.append(step)  # a missing key: keep it so the message can name it
                node = None
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            path.append(step)
            node = node[step]
    return tuple(path), False


def node_at(data: Any, path: Path) -> Any:
    """The value at ``path`` in plain YAML data, or None (also used by the editor)."""
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def model_at(model: type[BaseModel], path: Path) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` (for "did you mean")."""
    current: Any = model
    for step in path:
        current = _step(current, step)
        if current is None:
            return None
    return _first_model(current)


def _step(annotation: Any, step: str | int) -> Any:
    for option in annotation_options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel) and isinstance(step, str):
            info = option.model_fields.get(step)
            if info is not None:
                return info.annotation
        origin = typing.get_origin(option)
        if origin in (list, tuple) and isinstance(step, int):
            return typing.get_args(option)[0]
        if origin is dict and isinstance(step, str):
            return typing.get_args(option)[1]
    return None


def annotation_options(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return annotation_options(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [o for a in typing.get_args(annotation) for o in annotation_options(a)]
    return [annotation]


def _first_model(annotation: Any) -> type[BaseModel] | None:
    for option in annotation_options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None


def _keys_of(model: type[BaseModel] | None) -> list[str]:
    return list(model.model_fields) if model is not None else []


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _expected(err: ErrorDetails) -> str | None:
    return _EXPECTED.get(err["type"])


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"the number {getattr(value, 'raw', value)}"
    return f"'{value}'"


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _message(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind == "invalid":
        return str(ctx["message"])
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_describe(err['input'])}"
    if kind == "literal_error":
        options = str(ctx.get("expected", "")).replace("'", "")
        return f"must be one of: {options.replace(' or ', ', ')}; got {_describe(err['input'])}"
    if kind in ("too_short", "list_too_short"):
        return "must not be empty"
    if kind == "greater_than_equal":
        return f"must be at least {_number(ctx['ge'])}, got {_describe(err['input'])}"
    if kind == "less_than_equal":
        return f"must be at most {_number(ctx['le'])}, got {_describe(err['input'])}"
    if kind == "greater_than":
        return f"must be more than {_number(ctx['gt'])}, got {_describe(err['input'])}"
    return str(err["msg"])
