"""One place where what a person asked for becomes a sandbox's `Config`: flags from the
CLI, a command and settings from the editor, a folder's `.sandkit.yaml` (already filtered
by workspace trust), `pool fill --agent/--kit`. Each caller gathers its input into a
`SandboxRequest`; `build` checks all of it, cheaply, before anything is created or booted,
and says what is wrong in the words of the option that was given."""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.kits.builtin import looks_like_path
from sandkit.kits.images import DOCKER_KIT
from sandkit.kits.sizes import parse_size
from sandkit.sandbox.ports import PortError, Published, check_new, parse
from sandkit.sandbox.store import POOL_PREFIX, Config, SandboxError, check_name, default_name
from sandkit.vm.qemu import DEFAULT_DISK_MIB

if TYPE_CHECKING:
    from sandkit.kits.model import ResolvedSandbox
    from sandkit.sandbox.agent_command import SessionRequest
    from sandkit.sandbox.kitmemo import Summary

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


MIN_DISK_MIB = 4 << 10  # the guest image's root filesystem (vm/image.py DISK_SIZE)
MAX_DISK_MIB = 2 << 20  # 2 TiB: sparse, but a typo of a unit should not pass


def parse_disk(value: str | int | None, option: str = "--disk") -> int:
    """MiB of the guest's disk from '20g', '100g', '8192m' (None: the default)."""
    if value is None:
        return DEFAULT_DISK_MIB
    mib = value if isinstance(value, int) else None
    if mib is None:
        try:
            mib = parse_size(str(value)) >> 20
        except ValueError:
            raise SandboxError(f"{option} '{value}' is not a size like 20g or 8192m") from None
    if not MIN_DISK_MIB <= mib <= MAX_DISK_MIB:
        raise SandboxError(
            f"{option} '{value}': the guest's disk is between {MIN_DISK_MIB >> 10}g (its "
            f"image) and {MAX_DISK_MIB >> 20}t; give e.g. {option} 40g"
        )
    return mib


def choose_shape(
    agent: str,
    kits: list[str],
    kit_args: Mapping[str, str],
    cpus: int | None,
    memory_mib: int | None,
) -> Summary:
    """The shape from the flags, else the agent kit's resources, else the host's default.
    The kits are resolved for it, which also checks them (an image sandkit cannot run is
    an error) and says their warnings (an image it does not use) before anything starts.
    Built-in kits are resolved once for the same inputs (sandbox/kitmemo.py)."""
    from sandkit.hostconfig import registry_args
    from sandkit.kits import images
    from sandkit.sandbox import kitmemo
    from sandkit.vm.hostcheck import host_memory_mib

    defaults = dict(registry_args())
    host = (len(os.sched_getaffinity(0)), host_memory_mib())
    memo_key = kitmemo.key(
        [agent, *kits], kit_args, defaults=sorted(defaults.items()), flags=(cpus, memory_mib),
        host=host,
    )  # fmt: skip
    summary = kitmemo.load(memo_key)
    if summary is None:
        summary = _summarise(agent, kits, kit_args, defaults, cpus, memory_mib, host)
        kitmemo.save(memo_key, summary)
    for warning in summary.warnings:
        print(f"sandkit: {warning}", file=sys.stderr)
    images.require(summary.image, summary.agent_name)
    _summaries[_key(agent, kits, kit_args)] = summary
    return summary


# What build() learned about the kits in this process (pool.credential_environ reads it),
# and the resolved kits when it resolved them (a memo's summary holds no resolution).
_Key = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]
_summaries: dict[_Key, Summary] = {}
_resolved: dict[_Key, ResolvedSandbox] = {}


def _key(agent: str, kits: list[str], kit_args: Mapping[str, str]) -> _Key:
    return agent, tuple(kits), tuple(sorted(kit_args.items()))


def summary_of(config: Config) -> Summary | None:
    return _summaries.get(_key(config.agent, config.kits, config.kit_args))


def check_session_verb(config: Config, session: SessionRequest, interactive: bool) -> None:
    """Refuse, before anything is created or started, a session verb the agent kit does
    not declare (UnsupportedVerb, the supervisor's words: agent_command's one rule). The
    supervisor's agent-argv checks again: a kit may change in between. Called only with
    a verb: it loads the kit engine, and resolves the kits unless build() did just now."""
    from sandkit.sandbox.agent_command import agent_argv

    agent_argv(resolved_kits(config), [], interactive, session)


def resolved_kits(config: Config) -> ResolvedSandbox:
    """The config's kits resolved, as its supervisor resolves them: what build() resolved
    in this process, else now (the kit engine: ~0.1 s)."""
    sandbox = _resolved.get(_key(config.agent, config.kits, config.kit_args))
    if sandbox is None:
        from sandkit.hostconfig import registry_args
        from sandkit.kits import resolve

        defaults = config.arg_defaults or dict(registry_args())
        sandbox = resolve(config.agent, config.kits, config.kit_args, defaults=defaults).sandbox
    return sandbox


def _summarise(
    agent: str,
    kits: list[str],
    kit_args: Mapping[str, str],
    defaults: Mapping[str, str],
    cpus: int | None,
    memory_mib: int | None,
    host: tuple[int, int | None],
) -> Summary:
    from sandkit.kits import resolve, shape
    from sandkit.sandbox.kitmemo import Required, Summary

    resolution = resolve(agent, kits, kit_args, defaults=defaults)
    sandbox = _resolved[_key(agent, kits, kit_args)] = resolution.sandbox
    chosen = shape.choose(cpus, memory_mib, sandbox.agent.resources, sandbox.agent_name, *host)
    env_names: set[str] = set()
    required = []
    for cred in sandbox.credentials:
        names = ([cred.env] if cred.env else []) + list(cred.sources.env if cred.sources else ())
        env_names.update(names)
        if cred.required:
            has_file = bool(cred.sources and cred.sources.file)
            required.append(Required(cred.service, cred.oauth is not None, tuple(names), has_file))
    return Summary(
        cpus=chosen.cpus,
        memory_mib=chosen.memory_mib,
        notes=tuple(chosen.notes),
        warnings=tuple(w.format() for w in resolution.warnings),
        image=sandbox.agent.image,
        agent_name=sandbox.agent_name,
        required=tuple(required),
        env_names=tuple(sorted(env_names)),
    )


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


def parse_ports(specs: Iterable[str], option: str = "--publish") -> list[dict[str, object]]:
    """Publish specs, checked (one forward per host port and guest port), as Config.ports
    holds them."""
    ports: list[Published] = []
    for spec in specs:
        try:
            port = parse(spec)
            check_new(ports, port)
        except PortError as exc:
            raise SandboxError(f"{option}: {exc}") from None
        ports.append(port)
    return [x.as_dict() for x in ports]


@dataclass
class SandboxRequest:
    agent: str = "shell"
    kits: list[str] = field(default_factory=list)
    kit_args: dict[str, str] = field(default_factory=dict)
    workspace: Path | None = None
    name: str | None = None
    # None: the agent kit's resources, else a default scaled to the host (kits/shape.py).
    cpus: int | None = None
    memory: str | int | None = None  # '1g' or MiB
    disk: str | int | None = None  # '40g' or MiB; None: DEFAULT_DISK_MIB (20 GiB, sparse)
    default_policy: str = "balanced"
    resolve: Mapping[str, str] | list[str] = field(default_factory=dict)
    upstream_ca: Path | None = None
    ask_timeout: float = 60.0
    host_cas: bool = True
    kit_base: Path | None = None  # relative kit paths are relative to this (a workspace)
    ports: list[str] = field(default_factory=list)  # --publish specs, published at start
    docker: bool = False  # a private Docker Engine: the built-in docker kit is added


def build(
    request: SandboxRequest, *, pool_member: bool = False, require_credentials: bool = True
) -> Config:
    """A checked Config. Raises SandboxError / SetupError (with the fix) for anything
    wrong, before the image build, the golden snapshot or the pool are touched."""
    from sandkit.vm import hostcheck

    given_memory = parse_memory(request.memory) if request.memory is not None else None
    if (given_memory is not None and given_memory < MIN_MEMORY_MIB) or (
        request.cpus is not None and request.cpus < 1
    ):
        raise SandboxError(f"a sandbox needs at least 1 CPU and {MIN_MEMORY_MIB}m of memory")
    disk_mib = parse_disk(request.disk)
    pins = parse_resolve(request.resolve)
    ports = parse_ports(request.ports)
    upstream_ca = _checked_upstream_ca(request.upstream_ca)
    workspace = _checked_workspace(request.workspace)
    agent = kit_ref(request.agent, request.kit_base)
    kits = [kit_ref(k, request.kit_base) for k in request.kits]
    if request.docker and DOCKER_KIT not in kits:
        kits.append(DOCKER_KIT)
    chosen = choose_shape(agent, kits, request.kit_args, request.cpus, given_memory)
    if agent.startswith("git+") or any(k.startswith("git+") for k in kits):
        from sandkit.kits.gitref import pinned  # fetched just now: recorded by commit

        agent, kits = pinned(agent), [pinned(k) for k in kits]
    hostcheck.check_shape(chosen.cpus, chosen.memory_mib)
    for note in chosen.notes:
        print(f"sandkit: {note}", file=sys.stderr)
    name = check_name(request.name) if request.name else default_name(agent, workspace)
    if name.startswith(POOL_PREFIX) and not pool_member:
        raise SandboxError(f"'{name}': names starting with '{POOL_PREFIX}' are the warm pool's")
    hostcheck.require()  # what this user needs from the host, before anything is made
    config = Config(
        name=name,
        agent=agent,
        kits=kits,
        kit_args=dict(request.kit_args),
        workspace=str(workspace) if workspace else None,
        cpus=chosen.cpus,
        memory_mib=chosen.memory_mib,
        disk_mib=disk_mib,
        default_policy=request.default_policy,
        resolve=pins,
        upstream_ca=upstream_ca,
        ask_timeout=request.ask_timeout,
        host_cas=request.host_cas,
        ports=ports,
    )
    # A pool member is made before anyone's credentials are known; `sandkit login` makes a
    # sandbox precisely to give a required credential its value.
    if require_credentials and not pool_member:
        check_credentials(config, summary=chosen)
    return config


def _checked_upstream_ca(path: Path | None) -> str | None:
    if path is None:
        return None
    from sandkit.net.cafile import read_certificates

    read_certificates(path)  # certificates only: it goes into the guest
    return str(path.resolve())


def _checked_workspace(given: Path | None) -> Path | None:
    workspace = given.resolve() if given is not None else None
    if workspace is not None and not workspace.is_dir():
        raise SandboxError(f"{given} is not a folder")
    return workspace


class MissingCredentials(SandboxError):
    """Credentials a kit marks required have no value on the host: nothing is booted.
    ``services`` are what `sandkit secret set SERVICE` (or the editor) must set."""

    def __init__(self, services: list[str]) -> None:
        self.services = services
        fixes = "\n".join(f"  sandkit secret set {s}" for s in services)
        names = ", ".join(f"'{s}'" for s in services)
        super().__init__(
            f"the kits require credential(s) {names}, which have no value on this host; "
            f"set them first:\n{fixes}"
        )


def missing_credentials(
    config: Config, environ: Mapping[str, str] | None = None, summary: Summary | None = None
) -> list[str]:
    """Services of required credentials with no value: not in the secret store (global
    or this sandbox's), not in an allowed host variable or file, and no OAuth sign-in.
    With the kits' ``summary``, the kits are resolved only when it cannot tell."""
    if summary is not None and _all_present(config, summary, environ):
        return []
    from sandkit.hostconfig import registry_args
    from sandkit.kits import resolve
    from sandkit.kits.issues import KitError
    from sandkit.net.secrets import SecretStore, credential_lookup
    from sandkit.net.tokens import TokenStore

    try:
        resolution = resolve(
            config.agent, config.kits, config.kit_args, defaults=dict(registry_args())
        )
    except KitError:
        return []  # the kits' own errors are reported where they are loaded
    store, tokens = SecretStore(sandbox=config.name), TokenStore()
    missing: list[str] = []
    for cred in resolution.sandbox.credentials:
        if not cred.required or cred.service in missing:
            continue
        if cred.oauth is not None and tokens.get(cred.service, config.name) is not None:
            continue
        if credential_lookup(cred, store, environ).value is None:
            missing.append(cred.service)
    return missing


def _all_present(config: Config, summary: Summary, environ: Mapping[str, str] | None) -> bool:
    """Whether every required credential of built-in kits surely has a value: in the
    secret store, an OAuth sign-in, or a host variable (a built-in kit's are read without
    a grant). A file source, or none found: the full lookup decides."""
    env = os.environ if environ is None else environ
    # Another kit's host variable is read only once the user allows it (net/secrets.py
    # decides that): only built-in kits' variables count here.
    builtin = not any(
        looks_like_path(r) or r.startswith("git+") for r in (config.agent, *config.kits)
    )
    for cred in summary.required:
        if cred.file:
            return False
        if builtin and any(env.get(name) for name in cred.env):
            continue
        # Loaded only now: net.secrets imports the kit models (~0.1 s).
        from sandkit.net.secrets import SecretStore
        from sandkit.net.tokens import TokenStore

        if SecretStore(sandbox=config.name).get(cred.service):
            continue
        if not (cred.oauth and TokenStore().get(cred.service, config.name) is not None):
            return False
    return True


def check_credentials(
    config: Config, environ: Mapping[str, str] | None = None, summary: Summary | None = None
) -> None:
    missing = missing_credentials(config, environ, summary)
    if missing:
        raise MissingCredentials(missing)
