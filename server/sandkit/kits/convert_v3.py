"""schemaVersion "3" → canonical kit: each typed capability maps onto the same model.

A capability sandkit does not implement is an error unless it is marked optional, in
which case it is skipped with a warning (a group is skipped or kept as a whole)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from sandkit.kits import model as m
from sandkit.kits import spec_v2 as v2
from sandkit.kits import spec_v3 as v3
from sandkit.kits.convert_common import (
    Folder,
    check_duplicate_services,
    check_injects_allowed,
    volumes_of,
)
from sandkit.kits.fields import SpecModel
from sandkit.kits.source import KitSource
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import Path

ORIGIN_KEY = ("kind",)
SINGLETONS = {"network-policy", "resources", "privileged", "lifecycle", "agent-context", "sbx"}


@dataclass
class _Parts:
    """What the capabilities contribute, gathered before the kit is built."""

    allow: list[m.NetworkRule] = field(default_factory=list)
    deny: list[m.NetworkRule] = field(default_factory=list)
    creds: list[tuple[m.Credential, Path]] = field(default_factory=list)
    injects: list[tuple[str, Path, bool]] = field(default_factory=list)
    install: list[m.Command] = field(default_factory=list)
    startup: list[m.Command] = field(default_factory=list)
    files: list[m.SetupFile] = field(default_factory=list)
    interactive: list[str] | None = None
    context: m.AgentContext | None = None
    ports: list[m.Port] = field(default_factory=list)
    volumes: list[m.Volume] = field(default_factory=list)
    resources: m.Resources = field(default_factory=m.Resources)
    privileged: bool = False
    seen: dict[str, Path] = field(default_factory=dict)
    instances: dict[tuple[str, str], tuple[Any, Path]] = field(default_factory=dict)


def kit_name(default: str) -> str:
    """v3 kits have no name (identity is the reference); derive one from the folder."""
    name = re.sub(r"[^a-z0-9-]+", "-", default.lower()).strip("-")[:64].strip("-")
    return name or "kit"


def convert(spec: v3.KitV3, ctx: Context, source: KitSource, arg_values: dict[str, str]) -> m.Kit:
    name = kit_name(source.default_name)
    f = Folder(ctx, name)
    if spec.kind == "set":
        ctx.error(
            ("kind",),
            "kind 'set' bundles kits published as OCI images, which sandkit "
            "cannot fetch: pass each kit with --kit instead",
        )
    is_agent = spec.kind in ("workload", "sandbox")
    parts = _Parts()
    for i, item in enumerate(spec.capabilities):
        path: Path = ("capabilities", i)
        if isinstance(item, dict) and "group" in item:
            group = ctx.validate(v3.CapabilityGroup, item, path)
            if group is not None:
                _group(group.group, (*path, "group"), ctx, f, source, parts, is_agent)
        else:
            cap = ctx.validate(v3.Capability, item, path)
            if cap is not None and _supported(cap):
                _apply(cap, path, ctx, f, source, parts, is_agent)
            elif cap is not None:
                _skip(cap, cap.optional, path, ctx)
    check_duplicate_services(ctx, [(c.service, (*p, "service")) for c, p in parts.creds])
    check_injects_allowed(ctx, parts.injects, parts.allow)
    if spec.build is not None or spec.dockerfile is not None:
        key = "build" if spec.build is not None else "dockerfile"
        ctx.warn(
            (key,),
            f"'{key}' is not built by sandkit (its guest is a Debian image it builds "
            "itself); install tools with lifecycle@1 install hooks",
        )
    env = {a.env: arg_values[n] for n, a in spec.args.items() if a.env and n in arg_values}
    agent = (
        m.Agent(
            context_filename=parts.context.filename if parts.context else None,
            interactive_args=tuple(parts.interactive) if parts.interactive is not None else None,
            resources=parts.resources,
        )
        if is_agent
        else None
    )
    return m.Kit(
        name=name,
        kind=m.KitKind.AGENT if is_agent else m.KitKind.MIXIN,
        schema_version="3",
        file=ctx.file,
        origin=f.origin(ORIGIN_KEY),
        display_name=spec.displayName,
        description=spec.description,
        version=spec.version,
        source_url=spec.sourceUrl,
        agent=agent,
        args={
            k: m.ArgDecl(
                default=a.default,
                required=a.required,
                description=a.description,
                enum=tuple(a.enum) if a.enum is not None else None,
                pattern=a.pattern,
                env=a.env,
            )
            for k, a in spec.args.items()
        },
        network=m.Network(allow=tuple(parts.allow), deny=tuple(parts.deny)),
        credentials=tuple(c for c, _ in parts.creds),
        environment=env,
        install=tuple(parts.install),
        startup=tuple(parts.startup),
        files=tuple(parts.files),
        agent_context=(parts.context,) if parts.context and parts.context.content else (),
        ports=tuple(parts.ports),
        volumes=tuple(parts.volumes),
        privileged=parts.privileged,
    )


def _supported(cap: v3.Capability) -> bool:
    parsed = v3.parse_capability_type(cap.type)
    return parsed is not None and parsed[0] == v3.SANDBOX_NAMESPACE and parsed[1:] in v3.CONFIGS


def _skip(cap: v3.Capability, optional: bool, path: Path, ctx: Context) -> None:
    """Report an unsupported capability: a warning if optional, else an error."""
    if optional:
        ctx.warn(
            (*path, "type"),
            f"skipped optional capability '{cap.type}': sandkit does not support it",
            at_key=False,
            code="unsupported-capability",
        )
        return
    ctx.error(
        (*path, "type"),
        f"capability '{cap.type}' is not supported by sandkit; mark it "
        "'optional: true' to run without it",
        code="unsupported-capability",
    )


def _group(
    group: v3.GroupBody,
    path: Path,
    ctx: Context,
    f: Folder,
    source: KitSource,
    parts: _Parts,
    is_agent: bool,
) -> None:
    unsupported = [(i, c) for i, c in enumerate(group.capabilities) if not _supported(c)]
    for i, cap in unsupported:
        _skip(cap, group.optional or cap.optional, (*path, "capabilities", i), ctx)
    if unsupported and group.optional:
        return  # a group is atomic: one unsupported member drops it all
    for i, cap in enumerate(group.capabilities):
        if _supported(cap):
            _apply(cap, (*path, "capabilities", i), ctx, f, source, parts, is_agent)


def _apply(
    cap: v3.Capability,
    path: Path,
    ctx: Context,
    f: Folder,
    source: KitSource,
    parts: _Parts,
    is_agent: bool,
) -> None:
    parsed = v3.parse_capability_type(cap.type)
    assert parsed is not None
    _, name, version = parsed
    config = ctx.validate(v3.CONFIGS[(name, version)], cap.config, (*path, "config"))
    if config is None:
        return
    if name in SINGLETONS:
        if name in parts.seen:
            ctx.error(
                (*path, "type"),
                f"capability '{name}' may appear only once (first at "
                f"capabilities[{parts.seen[name][1]}])",
            )
            return
        parts.seen[name] = path
    cfg = (*path, "config")
    if isinstance(config, v3.NetworkPolicy1 | v3.NetworkPolicy2):
        _network(config, cfg, f, parts)
    elif isinstance(config, v3.CredentialConfig):
        if _instance(parts, ctx, "credential", config.service, config, path):
            phases = [config.phase] if isinstance(config.phase, str) else config.phase
            cred = v2.Credential(
                service=config.service,
                description=config.description,
                apiKey=config.apiKey,
                oauth=config.oauth,
            )
            parts.creds.append(
                (
                    f.credential(
                        cred, cfg, required=not cap.optional, phases=[m.Phase(p) for p in phases]
                    ),
                    cfg,
                )
            )
            if config.apiKey:
                parts.injects += [
                    (inj.domain, (*cfg, "apiKey", "inject", n, "domain"), False)
                    for n, inj in enumerate(config.apiKey.inject)
                ]
    elif isinstance(config, v3.Lifecycle):
        _lifecycle(config, cfg, f, parts)
    elif isinstance(config, v3.AgentContext):
        parts.context = _context(config, cfg, ctx, f, source)
    elif isinstance(config, v3.PortConfig):
        if _instance(parts, ctx, "port", f"{config.container}/{config.transport}", config, path):
            parts.ports.append(
                m.Port(container=config.container, protocol=config.transport, name=config.name)
            )
    elif isinstance(config, v3.VolumeConfig):
        if _instance(parts, ctx, "volume", config.path, config, path):
            parts.volumes += volumes_of(
                [(config.path, config.tmpfs, config.size or "512m", config.mode)]
            )
    elif isinstance(config, v3.ResourcesConfig):
        parts.resources = f.resources(config.cpu, config.memory, config.gpu)
    elif name == "privileged":
        parts.privileged = True
    elif name == "sbx" and not is_agent:
        ctx.error((*path, "type"), "'sbx@1' marks a workload; a mixin cannot declare it")


def _instance(
    parts: _Parts, ctx: Context, kind: str, key: str, config: SpecModel, path: Path
) -> bool:
    """Instance capabilities are keyed; the same key twice must carry the same config."""
    previous = parts.instances.get((kind, key))
    if previous is None:
        parts.instances[(kind, key)] = (config, path)
        return True
    if previous[0] != config:
        ctx.error((*path, "config"), f"{kind} '{key}' is declared twice with different settings")
    return False


def _network(
    config: v3.NetworkPolicy1 | v3.NetworkPolicy2, cfg: Path, f: Folder, parts: _Parts
) -> None:
    for phase in (m.Phase.INSTALL, m.Phase.RUNTIME):
        rules = getattr(config, phase.value)
        if rules is None:
            continue
        for verdict, out in (("allow", parts.allow), ("deny", parts.deny)):
            for i, entry in enumerate(getattr(rules, verdict)):
                at: Path = (*cfg, phase.value, verdict, i)
                if isinstance(entry, str):
                    out += f.rules([entry], at, phase, index=[at])
                else:
                    out += f.rules(entry.hosts, (*at, "hosts"), phase, entry.methods, entry.paths)


def _lifecycle(config: v3.Lifecycle, cfg: Path, f: Folder, parts: _Parts) -> None:
    parts.install += [
        f.command(
            h.command, h.user or "0", (*cfg, "install", i), env=h.env, description=h.description
        )
        for i, h in enumerate(config.install)
    ]
    parts.startup += [
        f.command(
            h.command,
            h.user or "1000",
            (*cfg, "startup", i),
            env=h.env,
            background=h.background,
            description=h.description,
        )
        for i, h in enumerate(config.startup)
    ]
    parts.files += [
        m.SetupFile(
            path=x.path,
            content=x.content,
            mode=int(x.mode, 8),
            overwrite=x.overwrite,
            description=x.description,
            origin=f.origin((*cfg, "files", i)),
        )
        for i, x in enumerate(config.files)
    ]
    if config.interactive:
        parts.interactive = list(config.interactive)


def _context(
    config: v3.AgentContext, cfg: Path, ctx: Context, f: Folder, source: KitSource
) -> m.AgentContext:
    content = config.content or ""
    if config.contentFile is not None:
        try:
            content = source.read(posixpath.normpath(config.contentFile)).decode("utf-8")
        except KeyError:
            ctx.error((*cfg, "contentFile"), f"'{config.contentFile}' is not a file inside the kit")
        except UnicodeDecodeError:
            ctx.error((*cfg, "contentFile"), f"'{config.contentFile}' is not UTF-8 text")
    return m.AgentContext(
        kit=f.kit, content=content, filename=config.filename, directory=config.directory
    )
