"""`sandkit exec` answers in tens of milliseconds only while its path imports neither
asyncio nor pydantic nor the kit engine: this holds it, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

# What the one-shot exec must not import (each costs 15-45 ms at every call).
HEAVY = (
    "asyncio",
    "logging",  # sandkit/logs.py: only what logs imports it
    "pydantic",
    "sandkit.kits",
    "sandkit.vm.golden",
    "sandkit.sandbox.protocol",
    "sandkit.sandbox.client",
    "sandkit.sandbox.lifecycle",
    "sandkit.sandbox.pool",
)

PROBE = """
import json, sys
from sandkit.cli import build_parser
from sandkit.cli import execute, sandbox
args = build_parser("exec").parse_args(["exec", "-it", "box", "--", "true"])
assert args.command == "exec" and args.name == "box"
print(json.dumps(sorted(m for m in sys.modules
                        if m.split(".")[0] in ("asyncio", "pydantic", "logging")
                        or m.startswith("sandkit."))))
"""


def loaded() -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    modules: list[str] = json.loads(out.stdout)
    return modules


def test_the_exec_verb_imports_no_asyncio_pydantic_or_kit_engine() -> None:
    modules = loaded()
    assert "sandkit.cli.execute" in modules  # the probe did load the exec path
    heavy = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []


def test_the_full_parser_still_has_every_command() -> None:
    from sandkit.cli import VERB_MODULES, build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    names = set(commands.choices or ())
    assert {"kit", "lsp", "trust"} | {c for cs in VERB_MODULES.values() for c in cs} == names


SILENT = """
import logging, sys
from sandkit.sandbox import pool  # a module that logs
logging.getLogger("sandkit.sandbox.pool").warning("not for the user's terminal")
assert isinstance(logging.getLogger("sandkit").handlers[0], logging.NullHandler)
"""


def test_sandkit_loggers_are_silent_unless_the_program_configures_logging() -> None:
    """Without a handler on "sandkit", Python would print this warning on stderr."""
    done = subprocess.run([sys.executable, "-c", SILENT], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
