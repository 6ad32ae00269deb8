"""The rows of the Sandboxes view: what ``sandkit.list`` answers and ``sandkit/sandboxes``
pushes. The store says what exists and its state; a running sandbox's sessions and
published ports come from its supervisor (the watcher asks, see watch.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandkit.errors import SandkitError
from sandkit.kits.builtin import looks_like_path
from sandkit.lsp import protocol
from sandkit.sandbox import lifecycle
from sandkit.sandbox.protocol import PortInfo, SessionInfo
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Sandbox, State, Store


@dataclass
class Live:
    """What the supervisor of a running sandbox last said of its sessions and ports."""

    sessions: list[protocol.SessionRow] = field(default_factory=list)
    ports: list[protocol.PortRow] = field(default_factory=list)

    @classmethod
    def of(cls, sessions: list[SessionInfo], ports: list[PortInfo]) -> Live:
        return cls(
            [
                {
                    "name": s.name,
                    "running": s.running,
                    "exit_status": s.exit_status,
                    "attached": s.attached,
                }
                for s in sessions
            ],
            [{"guest": x.guest, "host": x.host, "host_ip": x.host_ip} for x in ports],
        )


def sandbox_rows(
    store: Store | None = None, live: Mapping[str, Live] | None = None
) -> list[protocol.SandboxRow]:
    """Every sandbox but the warm pool's members."""
    return [
        sandbox_row(sandbox, sandbox.state(), (live or {}).get(sandbox.name))
        for sandbox in (store or Store()).all()
        if not lifecycle.is_pool_member(sandbox)
    ]


def sandbox_row(sandbox: Sandbox, state: State, live: Live | None = None) -> protocol.SandboxRow:
    try:
        config = sandbox.config()
    except SandkitError as exc:  # shown, so that it can be removed, not hiding the others
        return {
            "name": sandbox.name,
            "state": "damaged",
            "agent": "",
            "kits": [],
            "workspace": None,
            "sync": None,
            "error": str(exc),
            "sessions": [],
            "ports": [],
        }
    running = state.state == SandboxState.RUNNING
    known = live if running and live is not None else Live()
    return {
        "name": sandbox.name,
        "state": state.state,
        "agent": config.agent,
        "kits": config.kits,
        "workspace": config.workspace,
        "sync": state.sync if running else None,
        "error": state.error,
        "sessions": known.sessions if live is not None or not running else None,
        "ports": known.ports,
    }


def kit_spec_files(refs: list[str]) -> list[Path]:
    files = []
    for ref in refs:
        if not looks_like_path(ref) and not Path(ref).exists():
            continue  # built-in: not the user's to edit
        path = Path(ref)
        spec = path / "spec.yaml" if path.is_dir() else path
        if spec.is_file() and spec.suffix in (".yaml", ".yml"):
            files.append(spec.resolve())
    return files
