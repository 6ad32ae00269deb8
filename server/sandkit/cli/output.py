"""Output for people and scripts: JSON or YAML documents (tables and progress are in
sandkit.ui, which the supervisor's logs use too)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO


def dump(data: Any, as_json: bool, out: TextIO = sys.stdout) -> None:
    if as_json:
        json.dump(data, out, indent=2)
        out.write("\n")
        return
    from sandkit.yamlout import dump_yaml

    dump_yaml(data, out)
