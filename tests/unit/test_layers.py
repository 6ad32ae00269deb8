"""The layers and the imports allowed between them (docs/architecture.md): a unit test
walks every module's imports, so a new dependency in the wrong direction fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import sandkit

ROOT = Path(sandkit.__file__).parent
BASE = {"errors", "fsio", "guestuser", "logs", "paths", "pids", "rpc", "tasks", "ui", "yamlout"}
ALLOWED: dict[str, set[str]] = {
    "guest": set(),  # runs in the VM: the standard library only
    **dict.fromkeys(BASE, BASE),
    "kits": BASE,
    "net": BASE | {"kits"},
    "vm": BASE,
    "sync": BASE,
    "hostconfig": BASE | {"kits"},
    "sandbox": BASE | {"kits", "net", "vm", "sync", "hostconfig"},
    "lsp": BASE | {"kits", "net", "sandbox", "sync", "hostconfig", "vm"},
    "cli": BASE | {"kits", "net", "sandbox", "sync", "hostconfig", "vm", "lsp"},
    "__main__": {"cli"},
    "__init__": set(),
}


def layer(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def imported(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sandkit" and len(parts) > 1:
                out.add(parts[1])
    return out


def test_every_import_goes_in_an_allowed_direction() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        own = layer(path)
        assert own in ALLOWED, f"{path}: a new top-level module; add it to the layer table"
        for target in imported(path) - {own}:
            if target not in ALLOWED[own]:
                wrong.append(f"{path.relative_to(ROOT)} imports sandkit.{target}")
    assert not wrong, "\n".join(wrong)


def test_the_guest_agent_uses_the_standard_library_only() -> None:
    for path in (ROOT / "guest").rglob("*.py"):
        assert not imported(path), path
