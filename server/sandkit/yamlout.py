"""YAML output for people: block style, multi-line strings as literal blocks."""

from __future__ import annotations

from typing import Any, TextIO

from ruamel.yaml import YAML
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import LiteralScalarString


def _literal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def dump_yaml(data: Any, out: TextIO, header: str | None = None) -> None:
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    assert isinstance(yaml.representer, RoundTripRepresenter)
    if header:
        out.write(header)
    yaml.dump(_literal(data), out)
