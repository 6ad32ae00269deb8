"""Sandboxes on disk: $XDG_STATE_HOME/sandkit/sandboxes/<name>/ holds config.json (what
the user asked for), state.json (what is running), the VM's disk overlay, the workspace
share and the logs. Both JSON files are replaced atomically."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sandkit.errors import SandkitError
from sandkit.fsio import write_atomic
from sandkit.paths import private_state, runtime_dir, state_dir
from sandkit.pids import alive
from sandkit.sandbox.state import SandboxState
from sandkit.vm.qemu import DEFAULT_DISK_MIB

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,61}[A-Za-z0-9]")
# A warm-pool member is known by its name: reset refuses one, `sandkit pool` lists them,
# and a user's sandbox may not take it.
POOL_PREFIX = "pool-"


class SandboxError(SandkitError):
    """A sandbox does not exist, exists already, or is in the wrong state."""


def check_name(name: str) -> str:
    if not NAME.fullmatch(name) or name == "default":
        raise SandboxError(
            f"'{name}' is not a valid sandbox name: 2 to 63 letters, digits, '.', "
            "'-' or '_', starting and ending with a letter or digit ('default' is reserved)"
        )
    return name


def default_name(agent: str, workspace: Path | None) -> str:
    base = f"{Path(agent).name}-{workspace.name}" if workspace is not None else Path(agent).name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.")[:63].strip("-.")
    return cleaned if len(cleaned) >= 2 else f"sandbox-{cleaned}"


@dataclass
class Config:
    name: str
    agent: str
    kits: list[str] = field(default_factory=list)
    kit_args: dict[str, str] = field(default_factory=dict)
    # Host-derived values for kit args (package registries), fixed when the sandbox is made.
    arg_defaults: dict[str, str] = field(default_factory=dict)
    workspace: str | None = None
    cpus: int = 2
    memory_mib: int = 1024
    # The guest's disk (sparse): goldens are saved at the default, a bigger one grows once.
    disk_mib: int = DEFAULT_DISK_MIB
    default_policy: str = "balanced"  # for hosts no rule names
    resolve: dict[str, str] = field(default_factory=dict)  # HOST -> IP pins for the proxy
    upstream_ca: str | None = None  # extra CA the proxy trusts upstream (and the guest too)
    pool_shape: str | None = None  # set on warm-pool members (e.g. "2c1024m"), until adopted
    # A member prepared for its agent and kits (installs done): adopted only for the same.
    pool_prepared: bool = False
    host_cas: bool = True  # the guest also trusts the CAs added to the host's trust store
    ask_timeout: float = 60.0  # seconds a request no rule covers waits for a person's answer
    # Published ports (sandbox/ports.Published as dicts): what a start publishes again.
    ports: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)


@dataclass
class State:
    state: SandboxState = SandboxState.CREATED
    supervisor_pid: int | None = None
    qemu_pid: int | None = None
    started: float | None = None
    error: str | None = None
    proxy_port: int | None = None
    sync: str | None = None  # the sync engine's text: in sync | syncing | paused | conflicts
    adopted_from: str | None = None  # the warm-pool member this sandbox started as
    adopted_prepared: bool = False  # ... and that member was prepared for its kits
    # The supervisor's sandkit (protocol.Identity): `sandkit ls` tells a sandbox that runs
    # another version, and a pool member of another kind is never adopted.
    sandkit: str | None = None
    protocol: int | None = None
    executable: str | None = None
    prefix: str | None = None

    def __post_init__(self) -> None:
        self.state = SandboxState.parse(self.state)

    @classmethod
    def from_json(cls, data: object) -> State:
        """Fields a newer sandkit added are ignored, not a damaged file."""
        if not isinstance(data, dict):
            raise TypeError("state.json does not hold an object")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


Profile = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...], str]


def profile(config: Config) -> Profile:
    """What a prepared pool member was prepared for: the agent, the kits and their args,
    and the policy its installs ran under."""
    return (
        config.agent,
        tuple(config.kits),
        tuple(sorted(config.kit_args.items())),
        config.default_policy,
    )


def profile_of(data: dict[str, Any]) -> Profile:
    """The profile of a config sent as JSON (an adopt request's)."""
    return profile(Config(**{**data, "name": "x"}))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, 0600 whatever the umask."""
    write_atomic(path, json.dumps(data, indent=2).encode())


class Sandbox:
    """One sandbox's directory."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.dir = root / name

    @property
    def share(self) -> Path:
        return self.dir / "share"

    @property
    def sockets(self) -> Path:
        """Unix socket paths are limited to 107 bytes; deep state dirs use /tmp instead."""
        if len(str(self.dir / "control.sock")) < 100:
            return self.dir
        import hashlib  # here: ~2 ms (OpenSSL) the one-shot `sandkit exec` rarely needs

        digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:16]
        return runtime_dir() / digest

    @property
    def control(self) -> Path:
        return self.sockets / "control.sock"

    def config(self) -> Config:
        try:
            data = json.loads((self.dir / "config.json").read_text())
            known = {f.name for f in fields(Config)}  # a newer sandkit's fields are ignored
            return Config(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError) as exc:
            raise SandboxError(
                f"sandbox '{self.name}' is damaged ({exc}); `sandkit rm -f {self.name}` removes it"
            ) from None

    def save_config(self, config: Config) -> None:
        _write_json(self.dir / "config.json", asdict(config))

    def state(self) -> State:
        try:
            state = State.from_json(json.loads((self.dir / "state.json").read_text()))
        except (OSError, ValueError, TypeError):
            state = State()
        if state.state.live and not alive(state.supervisor_pid):
            state.state = SandboxState.CRASHED
            state.error = state.error or "the sandbox's supervisor is gone"
        return state

    def save_state(self, state: State) -> None:
        _write_json(self.dir / "state.json", asdict(state))

    def exists(self) -> bool:
        return (self.dir / "config.json").exists()


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or state_dir() / "sandboxes"

    def get(self, name: str) -> Sandbox:
        sandbox = Sandbox(self.root, check_name(name))
        if not sandbox.exists():
            raise SandboxError(f"no sandbox named '{name}' (see `sandkit ls`)")
        return sandbox

    def new(self, config: Config) -> Sandbox:
        sandbox = Sandbox(self.root, check_name(config.name))
        if sandbox.exists():
            raise SandboxError(f"a sandbox named '{config.name}' exists already")
        private_state(self.root)
        private_state(sandbox.dir)
        return sandbox

    def all(self) -> list[Sandbox]:
        if not self.root.is_dir():
            return []
        return [
            Sandbox(self.root, p.name)
            for p in sorted(self.root.iterdir())
            if (p / "config.json").exists()
        ]

    def remove(self, sandbox: Sandbox) -> None:
        from sandkit.vm.userns import remove_tree

        shutil.rmtree(sandbox.sockets, ignore_errors=True)
        # The share may hold files of the guest's root: as anyone but root, those belong
        # to subordinate ids (vm/userns.py).
        remove_tree(sandbox.dir)
