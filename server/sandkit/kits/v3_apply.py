"""Step 3 of a v3 kit's conversion (SPEC-v3 §7.1.1): the selected capabilities'
contributions, applied in declaration order and gathered in :class:`Parts` before the
kit is built."""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass, field
from typing import TypeAlias

from sandkit.kits import model as m
from sandkit.kits import spec_v2 as v2
from sandkit.kits import spec_v3 as v3
from sandkit.kits.convert_common import Folder, volumes_of
from sandkit.kits.fields import SpecModel
from sandkit.kits.source import KitSource, unsafe_path
from sandkit.kits.v3_validate import Entry, instance_keys, where
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import Path


@dataclass
class Parts:
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
    sessions: tuple[m.SessionVerbs, Path] | None = None
    interactive_sessions: tuple[m.SessionVerbs, Path] | None = None
    skills: list[m.Skill] = field(default_factory=list)
    skill_dirs: list[m.SkillsDir] = field(default_factory=list)
    host_mounts: list[m.HostMount] = field(default_factory=list)
    instances: dict[tuple[str, ...], tuple[SpecModel, Path]] = field(default_factory=dict)


def apply(
    entry: Entry,
    required: bool,
    ctx: Context,
    f: Folder,
    source: KitSource,
    parts: Parts,
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
    if isinstance(config, _Instanced):
        if _instance(parts, ctx, entry):
            _add_instance(config, cfg, required, f, source, parts)
    elif isinstance(config, v3.NetworkPolicy1 | v3.NetworkPolicy2):
        _network(config, cfg, f, parts)
    elif isinstance(config, v3.Lifecycle):
        _lifecycle(config, cfg, ctx, f, parts)
    elif isinstance(config, v3.AgentContext):
        _context(config, cfg, ctx, f, source, parts, is_agent)
    elif isinstance(config, v3.ResourcesConfig):
        _resources(config, cfg, ctx, parts)
    elif isinstance(config, v3.AgentSessions | v3.AgentInteractiveSessions):
        _sessions(config, cfg, ctx, parts, is_agent)


# Capabilities whose instances merge across blocks (one key, one config: `_instance`).
_Instanced: TypeAlias = (
    v3.CredentialConfig
    | v3.PortConfig
    | v3.VolumeConfig
    | v3.AgentSkill
    | v3.AgentSkills
    | v3.HostMount
)


def _add_instance(
    config: _Instanced, cfg: Path, required: bool, f: Folder, source: KitSource, parts: Parts
) -> None:
    """One fresh instance's contribution."""
    if isinstance(config, v3.CredentialConfig):
        _credential(config, cfg, required, f, parts)
    elif isinstance(config, v3.PortConfig):
        parts.ports.append(
            m.Port(container=config.container, protocol=config.transport, name=config.name)
        )
    elif isinstance(config, v3.VolumeConfig):
        parts.volumes += volumes_of(
            [(config.path, config.tmpfs, config.size, config.mode)],
            strict=True,
            origin=f.origin(cfg),
        )
    elif isinstance(config, v3.AgentSkill):
        _skill(config, cfg, f, source, parts)
    elif isinstance(config, v3.AgentSkills):
        parts.skill_dirs.append(
            m.SkillsDir(path=config.path, mode=config.mode, origin=f.origin(cfg))
        )
    else:
        parts.host_mounts.append(
            m.HostMount(
                path=config.path,
                mode=int(config.mode, 8) if config.mode else None,
                kit=f.kit,
                key=host_mount_key(source, config.path),
                origin=f.origin(cfg),
            )
        )


def host_mount_key(source: KitSource, path: str) -> str:
    """host-mount@1: storage keyed on the kit's identity (where sandkit read it from; a
    kit cannot claim another's by naming itself alike) and the cleaned path. The key is
    hex only: it names one folder on the host (sandbox/hostmounts.py checks it again)."""
    return hashlib.sha256(f"{kit_identity(source)}\0{path}".encode()).hexdigest()[:20]


def kit_identity(source: KitSource) -> str:
    """Where the kit lives: its absolute spec file, or for a fetched git kit its
    repository and folder without the commit (gitref: ``URLDIGEST-COMMIT/tree/...``), so
    that updating the kit keeps its host-mount storage (the page's survives-kit-update)."""
    from sandkit.kits.gitref import _cache_root

    spec = os.path.realpath(source.spec_file)
    root = os.path.realpath(_cache_root())
    if spec.startswith(root + os.sep):
        first, _, rest = spec[len(root) + 1 :].partition(os.sep)
        return f"git:{first.partition('-')[0]}/{rest}"
    return spec


def _tail(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def _sessions(
    config: v3.AgentSessions | v3.AgentInteractiveSessions,
    cfg: Path,
    ctx: Context,
    parts: Parts,
    is_agent: bool,
) -> None:
    """The workload's session verbs; a mixin's declaration has nothing to drive."""
    if not is_agent:
        ctx.warn(
            cfg,
            "a mixin's session verbs have nothing to drive: the workload's declaration "
            "governs, so this one is ignored",
            at_key=True,
        )
        return
    listing = config.list_
    command = ("sh", "-c", listing) if isinstance(listing, str) else _tail(listing)
    if isinstance(config, v3.AgentSessions):
        # agent-sessions@1: an empty tail reads as absent.
        verbs = m.SessionVerbs(
            prompt=tuple(config.prompt) if config.prompt else None,
            resume=tuple(config.resume) if config.resume else None,
            continue_session=tuple(config.continue_) if config.continue_ else None,
            list_command=command,
        )
        parts.sessions = (verbs, cfg)
        return
    parts.interactive_sessions = (
        m.SessionVerbs(
            prompt=_tail(config.prompt),
            resume=_tail(config.resume),
            continue_session=_tail(config.continue_),
            new_session=_tail(config.newSession),
            session_picker=_tail(config.sessionPicker),
            list_command=command,
        ),
        cfg,
    )


def _skill(config: v3.AgentSkill, cfg: Path, f: Folder, source: KitSource, parts: Parts) -> None:
    """A bundle shipped in the kit folder (files/skills/NAME/**, read through the kit's
    checked file layer) is written to the skill's path; otherwise an install step or
    files/home must have put it there."""
    name = config.effective_name
    prefix = f"files/skills/{name}/"
    bundled = tuple(sorted(rel[len(prefix) :] for rel in source.files if rel.startswith(prefix)))
    parts.skills.append(
        m.Skill(name=name, source=config.path, kit=f.kit, files=bundled, origin=f.origin(cfg))
    )


def _credential(
    config: v3.CredentialConfig, cfg: Path, required: bool, f: Folder, parts: Parts
) -> None:
    phases = [config.phase] if isinstance(config.phase, str) else config.phase
    cred = v2.Credential(
        service=config.service,
        description=config.description,
        apiKey=config.apiKey,
        oauth=config.oauth,
    )
    parts.creds.append(
        (f.credential(cred, cfg, required=required, phases=[m.Phase(p) for p in phases]), cfg)
    )
    if config.apiKey:
        parts.injects += [
            (inj.domain, (*cfg, "apiKey", "inject", n, "domain"), False)
            for n, inj in enumerate(config.apiKey.inject)
        ]


def _resources(config: v3.ResourcesConfig, cfg: Path, ctx: Context, parts: Parts) -> None:
    """One shape per sandbox: the same resources again merge, other values are an error."""
    if parts.resources is not None and parts.resources[0] != config:
        ctx.error(
            cfg,
            f"resources are declared again with other values (first at "
            f"{where(parts.resources[1])}); a sandbox has one shape",
            at_key=True,
        )
    parts.resources = parts.resources or (config, cfg)


def _instance(parts: Parts, ctx: Context, entry: Entry) -> bool:
    """Across blocks (top level and selected groups) one key with one config merges;
    the same key with another config is an error."""
    assert entry.config is not None
    fresh = False
    for key in instance_keys(entry):
        previous = parts.instances.get(key)
        if previous is None:
            parts.instances[key] = (entry.config, entry.path)
            fresh = True
        elif previous[0] != entry.config or isinstance(entry.config, v3.HostMount):
            ctx.error(
                (*entry.path, "config"),
                f"{key[0]} '{' '.join(key[1:])}' is declared twice with different settings "
                f"(first at {where(previous[1])})",
                at_key=True,
            )
    return fresh


def _network(
    config: v3.NetworkPolicy1 | v3.NetworkPolicy2, cfg: Path, f: Folder, parts: Parts
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


def _lifecycle(config: v3.Lifecycle, cfg: Path, ctx: Context, f: Folder, parts: Parts) -> None:
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
                f"'interactive' is declared twice (first at {where(parts.interactive[1])}); "
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
    parts: Parts,
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
                f"{where(parts.context[2])}); keep one",
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
