"""Field types shared by every spec version: scalars read the way sbx reads them, and
formats (names, modes, sizes, paths, network rules) checked with messages for people."""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Any, NoReturn

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from sandkit.kits.hostrules import parse_rule
from sandkit.kits.sizes import parse_size
from sandkit.kits.yamlpos import YamlFloat, YamlInt


def fail(message: str) -> NoReturn:
    # The message goes through the context so braces in it (${{ … }}) are not a template.
    raise PydanticCustomError("invalid", "{message}", {"message": message})


class SpecModel(BaseModel):
    """An input model: mirrors the YAML keys exactly and refuses unknown ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _scalar_text(value: Any) -> Any:
    """Scalars become text as written, as Go's YAML decoder does for string fields."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, YamlInt | YamlFloat):
        return value.raw
    if isinstance(value, int | float):
        return str(value)
    return value


def _check(pattern: str, message: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            fail(message.format(value=value))
        return value

    return AfterValidator(check)


Str = Annotated[str, BeforeValidator(_scalar_text)]

KitName = Annotated[
    Str,
    _check(
        r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?",
        "kit name '{value}' must be lowercase letters, digits and hyphens, "
        "start and end with a letter or digit, at most 64 characters",
    ),
]
EnvName = Annotated[
    Str,
    _check(
        r"[A-Za-z_][A-Za-z0-9_]*",
        "'{value}' is not a valid environment variable name (letters, digits, _; not starting with a digit)",
    ),
]
ArgName = Annotated[
    Str,
    _check(
        r"[A-Za-z_][A-Za-z0-9_-]*",
        "'{value}' is not a valid arg name (letters, digits, _ and -; not starting with a digit or -)",
    ),
]
Mode = Annotated[
    Str,
    _check(r"0?[0-7]{3,4}", 'mode \'{value}\' must be octal like "0644" or "0755" (quote it)'),
]
LockedPath = Annotated[
    Str,
    _check(
        r"[a-z][a-zA-Z0-9]*(?:\.[a-z][a-zA-Z0-9]*)*",
        "'{value}' is not a dotted key path like 'permissions.network'",
    ),
]
ServiceName = Annotated[
    Str,
    _check(
        r"[A-Za-z0-9][A-Za-z0-9_.-]*",
        "service '{value}' must be letters, digits, '-', '_' or '.' (e.g. 'anthropic')",
    ),
]


def _size(value: str) -> str:
    try:
        parse_size(value)
    except ValueError:
        fail(
            f'size \'{value}\' must be a number with an optional unit, like "512m", "8g" or "2GiB"'
        )
    return value


ByteSize = Annotated[Str, AfterValidator(_size)]


def _abs_path(value: str) -> str:
    if not value.startswith("/"):
        fail(f"path '{value}' must be absolute (start with '/')")
    if "\0" in value or ".." in value.split("/"):
        fail(f"path '{value}' must not contain '..' or NUL")
    return posixpath.normpath(value)


AbsPath = Annotated[Str, AfterValidator(_abs_path)]


def _rule(value: str) -> str:
    try:
        parse_rule(value)
    except ValueError as exc:
        fail(str(exc))
    return value.strip()


Rule = Annotated[Str, AfterValidator(_rule)]


def _host(value: str) -> str:
    rule = _rule(value)
    if not parse_rule(rule).names_host_explicitly or parse_rule(rule).ports is not None:
        fail(f"'{value}' must be a single host name without wildcard or port")
    return rule.lower()


Host = Annotated[Str, AfterValidator(_host)]


def _one_placeholder(value: str) -> str:
    if value.count("%s") != 1:
        fail(
            f"format '{value}' must contain exactly one %s where the secret goes, e.g. \"Bearer %s\""
        )
    return value


ValueFormat = Annotated[Str, AfterValidator(_one_placeholder)]
