"""Composition (pure): one agent kit plus mixins in --kit order → a ResolvedSandbox, and
``extends`` (a sandbox kit building on a built-in one), with sbx's merge rules:

- network allow/deny append (deny wins at enforcement); environment: last value wins;
- install, startup and setup files concatenate in kit order; shipped files overlay, later wins;
- a credential service declared twice, or a kit name used twice, is an error;
- skills: one name, one source; skill directories union (the wider mode wins); a host
  mount's path is declared once across the set (no volume or other mount there);
- ports append; volumes: last wins per path, except that a v3 (volume@1) request and
  another request for its path must match exactly (size by bytes, mode, tmpfs, and
  explicit versus unspecified) or composition fails; privileged if any kit asks;
- a mixin's ``requires.agent`` must name the agent kit;
- v3 ``provides``/``requires``/``integrates``/``conflicts`` are judged as a closed set
  (SPEC-v3 §5.3), and kits merge in dependency order: providers first, otherwise the
  order they were named (the agent, then --kit order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from sandkit.kits import model as m
from sandkit.kits import relations
from sandkit.kits.hostrules import parse_rule
from sandkit.kits.issues import KitError, KitIssue, Severity, Span

MAX_EXTENDS_DEPTH = 5
T = TypeVar("T")


def _issue(
    origin: m.Origin, message: str, code: str = "compose", severity: Severity = Severity.ERROR
) -> KitIssue:
    span = Span.point(origin.line - 1, origin.column - 1)
    return KitIssue(origin.file, span, message, severity, code)


def compose(agent: m.Kit, mixins: Sequence[m.Kit]) -> m.ResolvedSandbox:
    """Merge an agent kit and its mixins. Raises KitError listing every conflict."""
    issues: list[KitIssue] = []
    if agent.kind is not m.KitKind.AGENT or agent.agent is None:
        raise KitError(
            [
                _issue(
                    agent.origin,
                    f"'{agent.name}' is a mixin; a sandbox starts from an "
                    "agent kit (e.g. shell, claude) with mixins added by --kit",
                )
            ]
        )
    names = {agent.name}
    for kit in mixins:
        if kit.kind is m.KitKind.AGENT:
            issues.append(
                _issue(
                    kit.origin,
                    f"'{kit.name}' is an agent kit, and the sandbox already "
                    f"has one ('{agent.name}'): pass only mixins with --kit",
                )
            )
        if kit.name in names:
            issues.append(_issue(kit.origin, f'compose: duplicate kit name "{kit.name}"'))
        names.add(kit.name)
        if kit.requires_agent is not None and kit.requires_agent != agent.name:
            issues.append(
                _issue(
                    kit.origin,
                    f"mixin '{kit.name}' requires agent '{kit.requires_agent}', "
                    f"but this sandbox runs '{agent.name}'",
                )
            )
    named = [agent, *mixins]
    order, problems = relations.resolve(named)
    issues += [_issue(p.origin, p.message) for p in problems]
    kits = [named[i] for i in order]
    merged = merge_content(kits, issues)
    if issues:
        raise KitError(issues)
    return m.ResolvedSandbox(
        agent_name=agent.name,
        agent=agent.agent,
        kits=tuple(m.KitRef(name=k.name, kind=k.kind, file=k.file) for k in kits),
        **{name: getattr(merged, name) for name in m.KitContent.model_fields},
    )


def merge_content(kits: Iterable[m.KitContent], issues: list[KitIssue]) -> m.KitContent:
    kits = list(kits)
    creds: dict[str, m.Credential] = {}
    for kit in kits:
        for cred in kit.credentials:
            first = creds.get(cred.service)
            if first is not None:
                issues.append(
                    _issue(
                        cred.origin,
                        f"credential service '{cred.service}' is already "
                        f"declared by {first.origin}",
                    )
                )
            else:
                creds[cred.service] = cred
    volumes: dict[str, m.Volume] = {}
    statics: dict[tuple[str, str], m.StaticFile] = {}
    env: dict[str, str] = {}
    for kit in kits:
        env.update(kit.environment)
        for volume in kit.volumes:
            held = volumes.get(volume.path)
            if held is not None and (held.strict or volume.strict):
                if _storage(held) != _storage(volume):
                    issues.append(_volume_conflict(held, volume))
                continue  # a matching request merges into the first
            volumes[volume.path] = volume
        statics.update(((s.target, s.path), s) for s in kit.static_files)
    return m.KitContent(
        network=m.Network(
            allow=_cat(k.network.allow for k in kits), deny=_cat(k.network.deny for k in kits)
        ),
        credentials=tuple(creds.values()),
        environment=env,
        install=_cat(k.install for k in kits),
        startup=_cat(k.startup for k in kits),
        files=_cat(k.files for k in kits),
        static_files=tuple(statics.values()),
        agent_context=_cat(k.agent_context for k in kits),
        ports=_cat(k.ports for k in kits),
        volumes=tuple(volumes.values()),
        privileged=any(k.privileged for k in kits),
        skills=_skills(kits, issues),
        skill_dirs=_skill_dirs(kits),
        host_mounts=_host_mounts(kits, volumes, issues),
    )


def _skills(kits: Sequence[m.KitContent], issues: list[KitIssue]) -> tuple[m.Skill, ...]:
    """agent-skill@1: one discovery name is one bundle; the same request again merges,
    another source under the name is an error."""
    held: dict[str, m.Skill] = {}
    for kit in kits:
        for skill in kit.skills:
            first = held.setdefault(skill.name, skill)
            if first.source != skill.source:
                issues.append(
                    _issue(
                        skill.origin,
                        f"skill '{skill.name}' comes from '{skill.source}' here but from "
                        f"'{first.source}' in {first.origin}: one name cannot be two "
                        "different things; give one of them another 'name'",
                    )
                )
    return tuple(held.values())


def _skill_dirs(kits: Sequence[m.KitContent]) -> tuple[m.SkillsDir, ...]:
    """agent-skills@1: paths union; one path asked with two modes gets the wider one."""
    held: dict[str, m.SkillsDir] = {}
    for kit in kits:
        for d in kit.skill_dirs:
            first = held.setdefault(d.path, d)
            if d.mode == "readwrite" and first.mode != "readwrite":
                held[d.path] = first.model_copy(update={"mode": "readwrite"})
    return tuple(held.values())


def _host_mounts(
    kits: Sequence[m.KitContent], volumes: dict[str, m.Volume], issues: list[KitIssue]
) -> tuple[m.HostMount, ...]:
    """host-mount@1: shared storage has one declaring kit, so a second request for its
    path (another host mount or a volume), even an identical one, is an error."""
    held: dict[str, m.HostMount] = {}
    for kit in kits:
        for mount in kit.host_mounts:
            first = held.setdefault(mount.path, mount)
            other = (
                f"{first.origin} also declares a host mount there"
                if first is not mount
                else (
                    f"{volumes[mount.path].origin or 'another kit'} declares a volume there"
                    if mount.path in volumes
                    else None
                )
            )
            if other is not None:
                issues.append(
                    _issue(
                        mount.origin,
                        f"host mount '{mount.path}' conflicts: {other}; host-shared storage "
                        "has one declaring kit and is never merged",
                    )
                )
    return tuple(held.values())


def _storage(v: m.Volume) -> tuple[bool, int | None, int | None]:
    return (v.tmpfs, v.size_bytes, v.mode)


def _describe(v: m.Volume) -> str:
    size = f"size {v.size_bytes} bytes" if v.size_bytes is not None else "size unspecified"
    mode = f"mode {v.mode:04o}" if v.mode is not None else "mode unspecified"
    return f"{'tmpfs' if v.tmpfs else 'block'}, {size}, {mode}"


def _volume_conflict(first: m.Volume, later: m.Volume) -> KitIssue:
    where = later.origin or first.origin
    assert where is not None  # a strict request always carries its origin
    return _issue(
        where,
        f"volume '{later.path}' is requested as {_describe(later)}, but "
        f"{first.origin or 'another kit'} requests it as {_describe(first)}: requests for one "
        "path must match exactly (sandkit picks neither); make them agree",
    )


def _cat(parts: Iterable[Iterable[T]]) -> tuple[T, ...]:
    return tuple(item for part in parts for item in part)


def unreachable_injects(content: m.KitContent) -> list[KitIssue]:
    """Warnings for secrets aimed at hosts no kit allows: only the default policy (or an
    approval) can let those requests out, so the kit probably lacks an allow rule."""
    allow = [parse_rule(r.pattern) for r in content.network.allow]
    return [
        _issue(
            cred.origin,
            f"credential '{cred.service}' injects into '{inject.domain}', which "
            "no kit allows; requests to it depend on the default policy",
            "unreachable-inject",
            Severity.WARNING,
        )
        for cred in content.credentials
        for inject in cred.inject
        if not any(r.matches(inject.domain, 443) for r in allow)
    ]


def apply_extends(child: m.Kit, chain: Sequence[m.Kit]) -> m.Kit:
    """Fold ``child`` onto its parents (``chain``: nearest parent first).

    Scalars: the child wins; maps merge, the child winning; rules are set-unions parent
    first; commands run parent then child; setup files: the child overrides a path;
    a credential service or volume path defined by both is an error."""
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise KitError(
            [_issue(child.origin, f"'extends' is nested more than {MAX_EXTENDS_DEPTH} levels")]
        )
    result = child
    for parent in chain:
        result = _extend(result, parent)
    return result


def _extend(child: m.Kit, parent: m.Kit) -> m.Kit:
    issues: list[KitIssue] = []
    if parent.kind is not m.KitKind.AGENT or parent.agent is None:
        issues.append(_issue(child.origin, f"'extends: {parent.name}' must name an agent kit"))
    parent_services = {c.service for c in parent.credentials}
    for cred in child.credentials:
        if cred.service in parent_services:
            issues.append(
                _issue(
                    cred.origin,
                    f"credential service '{cred.service}' is already "
                    f"declared by the kit it extends ('{parent.name}')",
                )
            )
    parent_volumes = {v.path for v in parent.volumes} | {h.path for h in parent.host_mounts}
    storage_paths = [v.path for v in child.volumes] + [h.path for h in child.host_mounts]
    issues += [
        _issue(child.origin, f"volume '{path}' is already declared by '{parent.name}'")
        for path in storage_paths
        if path in parent_volumes
    ]
    if issues:
        raise KitError(issues)
    child_paths = {f.path for f in child.files}
    statics = {(s.target, s.path): s for s in (*parent.static_files, *child.static_files)}
    return child.model_copy(
        update={
            "agent": _merge_agent(parent.agent, child.agent),
            "network": m.Network(
                allow=_union(parent.network.allow, child.network.allow),
                deny=_union(parent.network.deny, child.network.deny),
            ),
            "credentials": (*parent.credentials, *child.credentials),
            "environment": {**parent.environment, **child.environment},
            "install": (*parent.install, *child.install),
            "startup": (*parent.startup, *child.startup),
            "files": (*(f for f in parent.files if f.path not in child_paths), *child.files),
            "static_files": tuple(statics.values()),
            "agent_context": (*parent.agent_context, *child.agent_context),
            "ports": (*parent.ports, *child.ports),
            "volumes": (*parent.volumes, *child.volumes),
            "privileged": parent.privileged or child.privileged,
            "skills": (*parent.skills, *child.skills),
            "skill_dirs": (*parent.skill_dirs, *child.skill_dirs),
            "host_mounts": (*parent.host_mounts, *child.host_mounts),
            "extends": None,
        }
    )


def _union(
    parent: Sequence[m.NetworkRule], child: Sequence[m.NetworkRule]
) -> tuple[m.NetworkRule, ...]:
    seen = {(r.pattern.lower(), r.phase, r.methods, r.paths) for r in parent}
    return (
        *parent,
        *(r for r in child if (r.pattern.lower(), r.phase, r.methods, r.paths) not in seen),
    )


def _merge_agent(parent: m.Agent | None, child: m.Agent | None) -> m.Agent | None:
    if parent is None or child is None:
        return child or parent
    merged = {
        name: getattr(child if getattr(child, name) not in ((), None) else parent, name)
        for name in m.Agent.model_fields
    }
    merged["resources"] = parent.resources.model_copy(
        update=child.resources.model_dump(exclude_none=True)
    )
    return m.Agent(**merged)
