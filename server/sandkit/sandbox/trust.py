"""Workspace trust: settings that come from a workspace (its `.sandkit.yaml`, kits inside
it) were written by whoever wrote the repository, or by the agent and synced back. Until
the user trusts the folder once (`sandkit trust PATH`, or VS Code's Workspace Trust), they
may narrow the sandbox but never widen it: no `allow-all`, no `resolve` to a non-public
address, no `upstreamCa`, no kit that carries credentials or install steps. What is
ignored is said, with the command that trusts the folder."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandkit.paths import config_dir

TRUST_FILE = "trusted-folders.json"
NARROWING_DEFAULTS = ("balanced", "deny-all")  # what an untrusted folder may choose


class TrustStore:
    """Folders the user trusts, in a 0600 file of the user's configuration."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / TRUST_FILE

    def folders(self) -> list[str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [str(f) for f in data] if isinstance(data, list) else []

    def is_trusted(self, folder: Path) -> bool:
        real = folder.resolve()
        return any(real == Path(f) or real.is_relative_to(f) for f in self.folders())

    def trust(self, folder: Path) -> Path:
        real = folder.resolve()
        if not real.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
        self._write(sorted({*self.folders(), str(real)}))
        return real

    def untrust(self, folder: Path) -> bool:
        real, folders = str(folder.resolve()), self.folders()
        if real not in folders:
            return False
        self._write([f for f in folders if f != real])
        return True

    def _write(self, folders: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(folders, f, indent=2)
        tmp.replace(self.path)


@dataclass
class Filtered:
    settings: dict[str, Any]
    ignored: list[str] = field(default_factory=list)

    def message(self, folder: Path) -> str:
        return (
            f"{folder} is not trusted, so sandkit ignored from its .sandkit.yaml: "
            + "; ".join(self.ignored)
            + f". If you trust this repository: `sandkit trust {folder}` (or VS Code's "
            "Manage Workspace Trust)."
        )


def _public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


# A kit widens the sandbox when it brings credentials (secrets sent where it chooses) or
# install steps (commands run as root before the agent); given a kit path, says which.
KitWidens = Callable[[str], str | None]


def restrict(settings: dict[str, Any], kit_widens: KitWidens) -> Filtered:
    """What an untrusted workspace's settings may keep (pure but for ``kit_widens``)."""
    out = Filtered(dict(settings))
    s = out.settings
    default = s.get("default")
    if default is not None and default not in NARROWING_DEFAULTS:
        out.ignored.append(f"default: {default}")
        s.pop("default")
    resolve = s.get("resolve")
    if isinstance(resolve, dict):
        kept = {h: a for h, a in resolve.items() if _public(str(a))}
        out.ignored += [f"resolve {h}={a}" for h, a in resolve.items() if h not in kept]
        s["resolve"] = kept
    elif resolve is not None:
        s.pop("resolve")
    if s.get("upstreamCa"):
        out.ignored.append(f"upstreamCa: {s.pop('upstreamCa')}")
    for key in ("agent",):
        ref = s.get(key)
        if isinstance(ref, str) and (why := kit_widens(ref)):
            out.ignored.append(f"{key} {ref} ({why})")
            s.pop(key)
    kits = []
    for ref in s.get("kits") or []:
        why = kit_widens(str(ref))
        if why:
            out.ignored.append(f"kit {ref} ({why})")
        else:
            kits.append(ref)
    if "kits" in s:
        s["kits"] = kits
    return out


def kit_widens(ref: str) -> str | None:
    """Does the kit at ``ref`` (a built-in name or a path) carry credentials or install
    steps? Built-in kits ship with sandkit and are trusted; a kit that cannot be read is
    refused (fail closed)."""
    from sandkit.kits.builtin import looks_like_path

    if not looks_like_path(ref):
        return None
    from sandkit.errors import SandkitError
    from sandkit.kits.loader import load_kit

    try:
        kit = load_kit(ref).kit
    except SandkitError:
        return "cannot be read"
    reasons = []
    if kit.credentials:
        reasons.append("it brings credentials")
    if kit.install:
        reasons.append("it runs install steps")
    if kit.volumes or kit.privileged:
        reasons.append("it asks for host volumes or privileges")
    return " and ".join(reasons) or None
