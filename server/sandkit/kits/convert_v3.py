"""schemaVersion "3" → canonical kit: each typed capability maps onto the same model.

Three steps, as SPEC-v3 §7.1.1 orders them: every declaration is validated (optional
ones and every member of a group included) with its block's arity; then selection keeps
what sandkit implements (a group only whole; an optional construct it cannot provide is
skipped with a warning, a required one is an error); then the selected contributions are
applied in declaration order."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from sandkit.kits import model as m
from sandkit.kits import relations
from sandkit.kits import spec_v2 as v2
from sandkit.kits import spec_v3 as v3
from sandkit.kits.convert_common import (
    PROXY_VARS,
    Folder,
    check_duplicate_services,
    check_env_name,
    check_injects_allowed,
    volumes_of,
)
from sandkit.kits.fields import SpecModel
from sandkit.kits.issues import NOT_IMPLEMENTED, UNSUPPORTED_CAPABILITY, UNSUPPORTED_KIND
from sandkit.kits.source import KitSource, unsafe_path
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import Path

ORIGIN_KEY = ("kind",)


@dataclass
class _Entry:
    """One capability request, validated: its config model if sandkit implements it."""

    cap: v3.Capability
    path: Path
    name: str
    version: int
    sandbox: bool  # in the com.docker.sandbox namespace
    config: SpecModel | None = None

    @property
    def implemented(self) -> bool:
        return self.sandbox and (self.name, self.version) in v3.CONFIGS


@dataclass
class _Construct:
    """An ordinary entry or a group: what selection keeps or skips as a whole."""

    path: Path
    optional: bool
    entries: list[_Entry]
    group: str | None = None  # the group's label, None for an ordinary entry


@dataclass
class _Parts:
    """What the selected capabilities contribute, gathered before the kit is built."""

    allow: list[m.NetworkRule] = field(default_factory=list)
    deny: list[m.NetworkRule] = field(default_factory=list)
    creds: list[tuple[m.Credential, Path]] = field(default_factory=list)
    injects: list[tuple[str, Path, bool]] = field(default_factory=list)
    install: list[m.Command] = field(default_factory=list)
    startup: list[m.Command] = field(default_factory=list)
    files: list[m.SetupFile] = field(default_factory=list)
    interactive: tuple[list[str], Path] | None = None
    context: tuple[v3.AgentContext, m.AgentContext, Path] | None = None
    ports: list[m.Port] = field(default_factory=list)
    volumes: list[m.Volume] = field(default_factory=list)
    resources: tuple[v3.ResourcesConfig, Path] | None = None
    privileged: bool = False
    instances: dict[tuple[str, ...], tuple[SpecModel, Path]] = field(default_factory=dict)


def kit_name(default: str) -> str:
    """v3 kits have no name (identity is the reference); derive one from the folder."""
    name = re.sub(r"[^a-z0-9-]+", "-", default.lower()).strip("-")[:64].strip("-")
    return name or "kit"


def _where(path: Path) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def convert(spec: v3.KitV3, ctx: Context, source: KitSource, arg_values: dict[str, str]) -> m.Kit:
    name = kit_name(source.default_name)
    f = Folder(ctx, name)
    if spec.kind == "set":
        ctx.error(
            ("kind",),
            "kind 'set' bundles kits published as OCI images, which sandkit "
            "cannot fetch: pass each kit with --kit instead",
            code=UNSUPPORTED_KIND,
            subject="kind: set",
        )
    is_agent = spec.kind in ("workload", "sandbox")
    constructs = _declarations(spec.capabilities, ctx)
    parts = _Parts()
    for construct in _select(constructs, ctx):
        for entry in construct.entries:
            _apply(entry, not construct.optional, ctx, f, source, parts, is_agent)
    check_duplicate_services(ctx, [(c.service, (*p, "service")) for c, p in parts.creds])
    check_injects_allowed(ctx, parts.injects, parts.allow)
    _recipe(spec, ctx, source)
    env = {a.env: arg_values[n] for n, a in spec.args.items() if a.env and n in arg_values}
    for n, a in spec.args.items():
        if a.env and a.env.upper() in PROXY_VARS:
            check_env_name(ctx, a.env, ("args", n, "env"))  # a warning: sandkit keeps its own
    env = {k: v for k, v in env.items() if k.upper() not in PROXY_VARS}
    context = parts.context[1] if parts.context else None
    legacy = context.filename if context and context.directory is None else None
    agent = (
        m.Agent(
            context_filename=legacy,
            interactive_args=tuple(parts.interactive[0]) if parts.interactive else None,
            resources=f.resources(
                parts.resources[0].cpu, parts.resources[0].memory, parts.resources[0].gpu
            )
            if parts.resources
            else m.Resources(),
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
        # An explicit profile (directory) is kept even without a body: it says where the
        # sandbox's instructions file goes.
        agent_context=(context,) if context and (context.content or context.directory) else (),
        ports=tuple(parts.ports),
        volumes=tuple(parts.volumes),
        privileged=parts.privileged,
        **_relations(spec, ctx, f),
    )


def _relations(spec: v3.KitV3, ctx: Context, f: Folder) -> dict[str, Any]:
    """provides/requires/integrates/conflicts parsed under SPEC-v3 §5, positioned."""
    out: dict[str, Any] = {"provides": [], "requires": [], "integrates": [], "conflicts": []}
    for i, text in enumerate(spec.provides):
        try:
            name, version = relations.parse_provide(text)
        except ValueError as exc:
            ctx.error(("provides", i), str(exc))
            continue
        # A local kit has no version of its own reference: 'version:' is the fallback.
        out["provides"].append(
            m.Provide(
                name=name,
                version=version or spec.version,
                text=text,
                origin=f.origin(("provides", i)),
            )
        )
    for key in ("requires", "integrates"):
        for i, text in enumerate(getattr(spec, key)):
            try:
                name, constraints = relations.parse_requirement(text)
            except ValueError as exc:
                ctx.error((key, i), str(exc))
                continue
            out[key].append(
                m.Requirement(
                    name=name,
                    constraints=tuple(m.Constraint(op=op, version=v) for op, v in constraints),
                    text=text,
                    origin=f.origin((key, i)),
                )
            )
    for i, text in enumerate(spec.conflicts):
        try:
            name = relations.parse_conflict(text)
        except ValueError as exc:
            ctx.error(("conflicts", i), str(exc))
            continue
        out["conflicts"].append(
            m.Requirement(name=name, text=text, origin=f.origin(("conflicts", i)))
        )
    return {k: tuple(v) for k, v in out.items()}


def _recipe(spec: v3.KitV3, ctx: Context, source: KitSource) -> None:
    """A recipe is for building an image, which sandkit does not do: never an error."""
    if spec.build is None and spec.dockerfile is None:
        return
    key = "build" if spec.build is not None else "dockerfile"
    note = ""
    if spec.dockerfile is not None and source.reader is not None:
        rel = posixpath.normpath(spec.dockerfile)
        try:
            source.read(rel)
        except KeyError:
            note = f" (and '{spec.dockerfile}' is not in the kit folder {source.folder})"
    ctx.warn(
        (key,),
        f"'{key}' is not built by sandkit (its guest is a Debian image it builds "
        f"itself){note}; install tools with lifecycle@1 install hooks",
    )


# ---- 1. validation ------------------------------------------------------------------


def _declarations(items: list[dict[str, Any]], ctx: Context) -> list[_Construct]:
    top: list[_Entry] = []
    constructs: list[_Construct] = []
    for i, item in enumerate(items):
        path: Path = ("capabilities", i)
        if isinstance(item, dict) and "group" in item:
            if len(item) > 1:
                ctx.error(
                    path,
                    "an item is a capability ('type: …') or a group ('group: …'), not both",
                    at_key=True,
                )
                continue
            group = ctx.validate(v3.CapabilityGroup, item, path)
            if group is None:
                continue
            members = _members(group.group.capabilities, (*path, "group"), ctx)
            _arity(members, ctx)
            constructs.append(
                _Construct(path, group.group.optional, members, group.group.name or _where(path))
            )
        else:
            entry = _entry(item, path, ctx)
            if entry is not None:
                top.append(entry)
                constructs.append(_Construct(path, entry.cap.optional, [entry]))
    _arity(top, ctx)
    return constructs


def _members(raw: list[Any], path: Path, ctx: Context) -> list[_Entry]:
    members = []
    for j, item in enumerate(raw):
        at: Path = (*path, "capabilities", j)
        if isinstance(item, dict) and "group" in item:
            ctx.error((*at, "group"), "groups do not nest: list the capabilities here", at_key=True)
            continue
        if isinstance(item, dict) and "optional" in item:
            ctx.error(
                (*at, "optional"),
                "a group member may not state 'optional' (even false): the group's own "
                "'optional' decides for all its members",
                at_key=True,
            )
        entry = _entry(item, at, ctx)
        if entry is not None:
            members.append(entry)
    return members


def _entry(item: Any, path: Path, ctx: Context) -> _Entry | None:
    cap = ctx.validate(v3.Capability, item, path)
    if cap is None:
        return None
    parsed = v3.parse_capability_type(cap.type)
    assert parsed is not None  # the model checked it
    ns, name, version = parsed
    entry = _Entry(cap, path, name, version, ns == v3.SANDBOX_NAMESPACE)
    if entry.implemented:
        entry.config = ctx.validate(v3.CONFIGS[(name, version)], cap.config, (*path, "config"))
    elif entry.sandbox and name in v3.CONFIG_LESS and cap.config:
        ctx.error((*path, "config"), f"'{cap.type}' takes no config", at_key=True)
    return entry


def _instance_keys(entry: _Entry) -> list[tuple[str, ...]]:
    """SPEC-v3 §7.1: what makes two requests of an instance-shaped type the same one."""
    c = entry.config
    if isinstance(c, v3.CredentialConfig):
        phases = [c.phase] if isinstance(c.phase, str) else c.phase
        return [("credential", c.service, p) for p in phases]
    if isinstance(c, v3.VolumeConfig):
        return [("volume", c.path)]
    if isinstance(c, v3.PortConfig):
        return [("port", str(c.container), c.transport)]
    return []


def _arity(block: list[_Entry], ctx: Context) -> None:
    """Singletons once per block; an instance key once per block; no exact duplicates."""
    singles: dict[str, _Entry] = {}
    keys: dict[tuple[str, ...], _Entry] = {}
    exact: dict[str, _Entry] = {}
    for entry in block:
        if entry.sandbox and entry.name in v3.SINGLETONS:
            first = singles.get(entry.name)
            if first is not None:
                if first.version != entry.version:
                    message = (
                        f"'{entry.cap.type}' and '{first.cap.type}' are exclusive (first at "
                        f"{_where(first.path)}): state one of them"
                    )
                else:
                    message = (
                        f"capability '{entry.name}' may appear only once (first at "
                        f"{_where(first.path)})"
                    )
                ctx.error((*entry.path, "type"), message)
                continue
            singles[entry.name] = entry
        for key in _instance_keys(entry):
            first = keys.get(key)
            if first is not None:
                ctx.error(
                    (*entry.path, "config"),
                    f"{key[0]} '{' '.join(key[1:])}' is declared twice in one block (first at "
                    f"{_where(first.path)}); keep one",
                    at_key=True,
                )
            keys.setdefault(key, entry)
        if not entry.implemented:
            same = repr((entry.cap.type, entry.cap.config))
            if same in exact:
                ctx.error(
                    (*entry.path, "type"),
                    f"exact duplicate of {_where(exact[same].path)}; keep one",
                )
            exact.setdefault(same, entry)


# ---- 2. selection -------------------------------------------------------------------


def _why_not(entry: _Entry) -> tuple[str, str]:
    """(issue code, reason) for a type sandkit does not provide."""
    key = (entry.name, entry.version)
    if entry.sandbox and key in v3.NOT_IMPLEMENTED:
        return NOT_IMPLEMENTED, f"not implemented in sandkit yet ({v3.NOT_IMPLEMENTED[key]})"
    if entry.sandbox and key in v3.UNSUPPORTED:
        return UNSUPPORTED_CAPABILITY, f"not supported by sandkit: {v3.UNSUPPORTED[key]}"
    return UNSUPPORTED_CAPABILITY, "not supported by sandkit"


def _select(constructs: list[_Construct], ctx: Context) -> list[_Construct]:
    """A construct is kept only when sandkit implements every one of its entries."""
    selected = []
    for construct in constructs:
        rejected = [e for e in construct.entries if not e.implemented]
        if not rejected:
            selected.append(construct)
            continue
        if construct.optional:
            for entry in rejected:
                _, why = _why_not(entry)
                whole = (
                    f" (so group '{construct.group}' is skipped whole)" if construct.group else ""
                )
                ctx.warn(
                    (*entry.path, "type"),
                    f"skipped optional capability '{entry.cap.type}': {why}{whole}",
                    at_key=False,
                    code=UNSUPPORTED_CAPABILITY,
                )
            continue
        for entry in rejected:
            code, why = _why_not(entry)
            fix = (
                f"mark group '{construct.group}' 'optional: true' to run without it"
                if construct.group
                else "mark it 'optional: true' to run without it"
            )
            ctx.error(
                (*entry.path, "type"),
                f"capability '{entry.cap.type}' is {why}; {fix}",
                code=code,
                subject=entry.cap.type,
            )
    return selected


# ---- 3. application -----------------------------------------------------------------


def _apply(
    entry: _Entry,
    required: bool,
    ctx: Context,
    f: Folder,
    source: KitSource,
    parts: _Parts,
    is_agent: bool,
) -> None:
    config, path = entry.config, entry.path
    cfg: Path = (*path, "config")
    if entry.name == "sbx":
        if not is_agent:
            ctx.error((*path, "type"), "'sbx@1' marks a workload; a mixin cannot declare it")
        return
    if entry.name == "privileged":
        parts.privileged = True
        return
    if config is None:
        return  # invalid: already reported
    if isinstance(config, v3.NetworkPolicy1 | v3.NetworkPolicy2):
        _network(config, cfg, f, parts)
    elif isinstance(config, v3.CredentialConfig):
        if _instance(parts, ctx, entry):
            phases = [config.phase] if isinstance(config.phase, str) else config.phase
            cred = v2.Credential(
                service=config.service,
                description=config.description,
                apiKey=config.apiKey,
                oauth=config.oauth,
            )
            parts.creds.append(
                (
                    f.credential(cred, cfg, required=required, phases=[m.Phase(p) for p in phases]),
                    cfg,
                )
            )
            if config.apiKey:
                parts.injects += [
                    (inj.domain, (*cfg, "apiKey", "inject", n, "domain"), False)
                    for n, inj in enumerate(config.apiKey.inject)
                ]
    elif isinstance(config, v3.Lifecycle):
        _lifecycle(config, cfg, ctx, f, parts)
    elif isinstance(config, v3.AgentContext):
        _context(config, cfg, ctx, f, source, parts, is_agent)
    elif isinstance(config, v3.PortConfig):
        if _instance(parts, ctx, entry):
            parts.ports.append(
                m.Port(container=config.container, protocol=config.transport, name=config.name)
            )
    elif isinstance(config, v3.VolumeConfig):
        if _instance(parts, ctx, entry):
            parts.volumes += volumes_of(
                [(config.path, config.tmpfs, config.size, config.mode)],
                strict=True,
                origin=f.origin(cfg),
            )
    elif isinstance(config, v3.ResourcesConfig):
        if parts.resources is not None and parts.resources[0] != config:
            ctx.error(
                cfg,
                f"resources are declared again with other values (first at "
                f"{_where(parts.resources[1])}); a sandbox has one shape",
                at_key=True,
            )
        parts.resources = parts.resources or (config, cfg)


def _instance(parts: _Parts, ctx: Context, entry: _Entry) -> bool:
    """Across blocks (top level and selected groups) one key with one config merges;
    the same key with another config is an error."""
    assert entry.config is not None
    fresh = False
    for key in _instance_keys(entry):
        previous = parts.instances.get(key)
        if previous is None:
            parts.instances[key] = (entry.config, entry.path)
            fresh = True
        elif previous[0] != entry.config:
            ctx.error(
                (*entry.path, "config"),
                f"{key[0]} '{' '.join(key[1:])}' is declared twice with different settings "
                f"(first at {_where(previous[1])})",
                at_key=True,
            )
    return fresh


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


def _lifecycle(config: v3.Lifecycle, cfg: Path, ctx: Context, f: Folder, parts: _Parts) -> None:
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
        if parts.interactive is not None:
            ctx.error(
                (*cfg, "interactive"),
                f"'interactive' is declared twice (first at {_where(parts.interactive[1])}); "
                "it replaces the launch arguments, so keep one",
                at_key=True,
            )
        else:
            parts.interactive = (list(config.interactive), (*cfg, "interactive"))


def _context(
    config: v3.AgentContext,
    cfg: Path,
    ctx: Context,
    f: Folder,
    source: KitSource,
    parts: _Parts,
    is_agent: bool,
) -> None:
    if config.filename and config.directory is None and not is_agent:
        ctx.error(
            (*cfg, "filename"),
            "'filename' without 'directory' names the workload's profile; a mixin gives "
            "both (an explicit profile) or neither (a body the profile indexes)",
            at_key=True,
        )
    if parts.context is not None:
        if parts.context[0] != config:
            ctx.error(
                cfg,
                f"agent-context is declared again with other settings (first at "
                f"{_where(parts.context[2])}); keep one",
                at_key=True,
            )
        return
    content = config.content or ""
    if config.contentFile is not None and source.reader is not None:
        rel = posixpath.normpath(config.contentFile)
        if unsafe_path(rel) is not None:
            ctx.error((*cfg, "contentFile"), f"'{config.contentFile}' is not a file inside the kit")
        else:
            try:
                content = source.read(rel).decode("utf-8")
            except KeyError:
                ctx.error(
                    (*cfg, "contentFile"),
                    f"contentFile '{config.contentFile}' was not found in the kit folder "
                    f"{source.folder}: add the file there, or write the text inline as 'content'",
                )
            except UnicodeDecodeError:
                ctx.error((*cfg, "contentFile"), f"'{config.contentFile}' is not UTF-8 text")
    parts.context = (
        config,
        m.AgentContext(
            kit=f.kit, content=content, filename=config.filename, directory=config.directory
        ),
        cfg,
    )
