"""One place where what a person asked for becomes a sandbox's `Config`: flags from the
CLI, a command and settings from the editor, a folder's `.sandkit.yaml` (already filtered
by workspace trust), `pool fill --agent/--kit`. Each caller gathers its input into a
`SandboxRequest`; `build` checks all of it, cheaply, before anything is created or booted,
and says what is wrong in the words of the option that was given."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandkit.kits.builtin import looks_like_path
from sandkit.kits.sizes import parse_size
from sandkit.sandbox.lifecycle import POOL_PREFIX
from sandkit.sandbox.store import Config, SandboxError, check_name, default_name

MIN_MEMORY_MIB = 256


def kit_ref(ref: str, base: Path | None = None) -> str:
    """The one rule for "is this a kit path": a path-looking reference (or an existing
    file or folder) becomes absolute, from ``base`` (a workspace folder) or the current
    directory; a built-in kit's name stays a name. The supervisor resolves it later,
    from elsewhere."""
    path = Path(ref) if base is None else base / ref
    if looks_like_path(ref) or path.exists():
        return str(path.resolve())
    return ref


def parse_memory(value: str | int, option: str = "--memory") -> int:
    """MiB from '1g', '512m' (or a number of MiB)."""
    if isinstance(value, int):
        return value
    try:
        return parse_size(str(value)) >> 20
    except ValueError:
        raise SandboxError(f"{option} '{value}' is not a size like 1g or 512m") from None


def parse_resolve(
    items: Iterable[str] | Mapping[str, str], option: str = "--resolve"
) -> dict[str, str]:
    """HOST=IP pins for the proxy, checked."""
    pairs = (
        list(items.items())
        if isinstance(items, Mapping)
        else [tuple(item.partition("=")[::2]) for item in items]
    )
    pins = {}
    for host, ip in pairs:
        shown = f"{host}={ip}"
        if not host or not ip:
            raise SandboxError(f"{option} '{shown}' is not HOST=IP")
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise SandboxError(f"{option} '{shown}': '{ip}' is not an IP address") from None
        pins[str(host)] = str(ip)
    return pins


@dataclass
class SandboxRequest:
    agent: str = "shell"
    kits: list[str] = field(default_factory=list)
    kit_args: dict[str, str] = field(default_factory=dict)
    workspace: Path | None = None
    name: str | None = None
    cpus: int = 2
    memory: str | int = 1024  # '1g' or MiB
    default_policy: str = "balanced"
    resolve: Mapping[str, str] | list[str] = field(default_factory=dict)
    upstream_ca: Path | None = None
    ask_timeout: float = 60.0
    host_cas: bool = True
    kit_base: Path | None = None  # relative kit paths are relative to this (a workspace)


def build(request: SandboxRequest, *, pool_member: bool = False) -> Config:
    """A checked Config. Raises SandboxError / SetupError (with the fix) for anything
    wrong, before the image build, the golden snapshot or the pool are touched."""
    from sandkit.vm import hostcheck

    memory = parse_memory(request.memory)
    if memory < MIN_MEMORY_MIB or request.cpus < 1:
        raise SandboxError(f"a sandbox needs at least 1 CPU and {MIN_MEMORY_MIB}m of memory")
    hostcheck.check_shape(request.cpus, memory)
    pins = parse_resolve(request.resolve)
    upstream_ca = None
    if request.upstream_ca is not None:
        from sandkit.net.cafile import read_certificates

        read_certificates(request.upstream_ca)  # certificates only: it goes into the guest
        upstream_ca = str(request.upstream_ca.resolve())
    workspace = request.workspace.resolve() if request.workspace is not None else None
    if workspace is not None and not workspace.is_dir():
        raise SandboxError(f"{request.workspace} is not a folder")
    agent = kit_ref(request.agent, request.kit_base)
    name = check_name(request.name) if request.name else default_name(agent, workspace)
    if name.startswith(POOL_PREFIX) and not pool_member:
        raise SandboxError(f"'{name}': names starting with '{POOL_PREFIX}' are the warm pool's")
    hostcheck.require()  # what this user needs from the host, before anything is made
    return Config(
        name=name,
        agent=agent,
        kits=[kit_ref(k, request.kit_base) for k in request.kits],
        kit_args=dict(request.kit_args),
        workspace=str(workspace) if workspace else None,
        cpus=request.cpus,
        memory_mib=memory,
        default_policy=request.default_policy,
        resolve=pins,
        upstream_ca=upstream_ca,
        ask_timeout=request.ask_timeout,
        host_cas=request.host_cas,
    )
