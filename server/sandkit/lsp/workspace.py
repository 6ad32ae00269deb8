"""A workspace folder's sandbox settings: .sandkit.yaml (agent, kits, kitArgs, default,
memory, docker, resolve, upstreamCa), shared by the commands and the kit diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from sandkit.kits.yamlpos import check_depth
from sandkit.lsp import protocol
from sandkit.sandbox.store import SandboxError
from sandkit.sandbox.trust import Filtered


def find_workspace_file(start: Path, levels: int = 8) -> Path | None:
    """The nearest .sandkit.yaml in ``start`` or a folder above it."""
    for folder in [start, *start.parents][:levels]:
        candidate = folder / protocol.WORKSPACE_FILE
        if candidate.is_file():
            return candidate
    return None


def workspace_settings(folder: Path, trusted: bool) -> Filtered:
    """The folder's .sandkit.yaml as it may be used: all of it in a trusted folder; in
    another, only what cannot widen the sandbox (see sandbox/trust.py), with what was
    ignored."""
    from sandkit.sandbox.trust import kit_widens, restrict

    settings = workspace_defaults(folder)
    return Filtered(settings) if trusted else restrict(settings, kit_widens)


def workspace_defaults(folder: Path) -> dict[str, Any]:
    """The folder's .sandkit.yaml (agent, kits, kitArgs, default, memory, resolve,
    upstreamCa), as written; paths in it are relative to the folder. Untrusted: see
    ``workspace_settings`` before using it to make a sandbox."""
    path = folder / protocol.WORKSPACE_FILE
    if not path.is_file():
        return {}
    try:
        text = path.read_text()
        check_depth(text, str(path))  # a deep document would crash libyaml's composer
        data = YAML(typ="safe").load(text)
    except (OSError, YAMLError) as exc:
        raise SandboxError(f"{path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SandboxError(f"{path}: expected a mapping with agent, kits, kitArgs")
    kits = [str(k) for k in data.get("kits") or []]
    data["kits"] = [
        str((folder / k).resolve()) if ("/" in k or k.startswith(".")) else k for k in kits
    ]
    agent = data.get("agent")
    if isinstance(agent, str) and ("/" in agent or agent.startswith(".")):
        data["agent"] = str((folder / agent).resolve())
    return data
