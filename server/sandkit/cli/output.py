"""Output for people and scripts: JSON or YAML documents, and a sandbox's start shown as
it goes (tables and progress lines are in sandkit.ui, which the supervisor's logs use)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from sandkit.sandbox.store import Sandbox


def dump(data: Any, as_json: bool, out: TextIO = sys.stdout) -> None:
    if as_json:
        json.dump(data, out, indent=2)
        out.write("\n")
        return
    from sandkit.yamlout import dump_yaml

    dump_yaml(data, out)


async def start_showing_progress(sandbox: Sandbox) -> None:
    """Start ``sandbox`` (building the guest image first if need be), with a progress line
    for the image build and a spinner while it boots; nothing if it runs already."""
    from sandkit.sandbox import lifecycle
    from sandkit.ui import ProgressLine

    line = ProgressLine(sandbox.name)
    try:
        await lifecycle.start(
            sandbox, progress=ProgressLine("guest image").step, waiting=lambda s: line.spin(s)
        )
    finally:
        line.clear()
