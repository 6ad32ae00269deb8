"""schemaVersion "3" → canonical kit: each typed capability maps onto the same model.

Three steps, as SPEC-v3 §7.1.1 orders them: every declaration is validated (optional
ones and every member of a group included) with its block's arity; then selection keeps
what sandkit implements (a group only whole; an optional construct it cannot provide is
skipped with a warning, a required one is an error); then the selected contributions are
applied in declaration order. Validation is v3_validate.py, application v3_apply.py;
selection, and building the kit from what was applied, are here."""

from __future__ import annotations

import re
from typing import Any

from sandkit.kits import model as m
from sandkit.kits import relations
from sandkit.kits import spec_v3 as v3
from sandkit.kits.convert_common import (
    PROXY_VARS,
    Folder,
    check_duplicate_services,
    check_env_name,
    check_injects_allowed,
)
from sandkit.kits.issues import NOT_IMPLEMENTED, UNSUPPORTED_CAPABILITY, UNSUPPORTED_KIND
from sandkit.kits.recipe import Replay, replay_recipe
from sandkit.kits.source import KitSource
from sandkit.kits.v3_apply import Parts, apply
from sandkit.kits.v3_validate import Construct, Entry, declarations
from sandkit.kits.validation import Context

ORIGIN_KEY = ("kind",)


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
            code=UNSUPPORTED_KIND,
            subject="kind: set",
        )
    is_agent = spec.kind in ("workload", "sandbox")
    constructs = declarations(spec.capabilities, ctx)
    parts = Parts()
    for construct in _select(constructs, ctx):
        for entry in construct.entries:
            apply(entry, not construct.optional, ctx, f, source, parts, is_agent)
    check_duplicate_services(ctx, [(c.service, (*p, "service")) for c, p in parts.creds])
    check_injects_allowed(ctx, parts.injects, parts.allow)
    recipe = replay_recipe(spec, ctx, source, arg_values, is_agent, name)
    # Create-phase arg exports replace the image's defaults (SPEC-v3 §6.1).
    env = {**recipe.env, **_environment(spec, ctx, arg_values)}
    context = parts.context[1] if parts.context else None
    _new_session_agrees(parts, ctx)
    agent = _agent(parts, f, context, recipe) if is_agent else None
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
        args=_args(spec),
        network=m.Network(allow=tuple(parts.allow), deny=tuple(parts.deny)),
        credentials=tuple(c for c, _ in parts.creds),
        environment=env,
        install=(*recipe.install, *parts.install),
        startup=tuple(parts.startup),
        files=tuple(parts.files),
        # An explicit profile (directory) is kept even without a body: it says where the
        # sandbox's instructions file goes.
        agent_context=(context,) if context and (context.content or context.directory) else (),
        ports=tuple(parts.ports),
        volumes=tuple(parts.volumes),
        privileged=parts.privileged,
        skills=tuple(parts.skills),
        skill_dirs=tuple(parts.skill_dirs),
        host_mounts=tuple(parts.host_mounts),
        **_relations(spec, ctx, f),
    )


def _environment(spec: v3.KitV3, ctx: Context, arg_values: dict[str, str]) -> dict[str, str]:
    """The args' values that name a variable, without the proxy's (sandkit sets those)."""
    env = {a.env: arg_values[n] for n, a in spec.args.items() if a.env and n in arg_values}
    for n, a in spec.args.items():
        if a.env and a.env.upper() in PROXY_VARS:
            check_env_name(ctx, a.env, ("args", n, "env"))  # a warning: sandkit keeps its own
    return {k: v for k, v in env.items() if k.upper() not in PROXY_VARS}


def _new_session_agrees(parts: Parts, ctx: Context) -> None:
    """agent-interactive-sessions@1: a stated newSession and a non-empty lifecycle
    'interactive' tail name one invocation, so they must be the same argv."""
    if parts.interactive is None or parts.interactive_sessions is None:
        return
    verbs, at = parts.interactive_sessions
    if verbs.new_session is not None and list(verbs.new_session) != parts.interactive[0]:
        ctx.error(
            (*at, "newSession"),
            f"newSession {list(verbs.new_session)} differs from lifecycle 'interactive' "
            f"{parts.interactive[0]}: both name the new interactive session, so give them "
            "the same argv (or omit newSession)",
            at_key=True,
        )


def _agent(parts: Parts, f: Folder, context: m.AgentContext | None, recipe: Replay) -> m.Agent:
    legacy = context.filename if context and context.directory is None else None
    return m.Agent(
        image=recipe.image,
        entrypoint=recipe.entrypoint,
        args=recipe.args,
        user=recipe.user,
        workdir=recipe.workdir,
        command_missing=recipe.missing,
        sessions=parts.sessions[0] if parts.sessions else None,
        interactive_sessions=parts.interactive_sessions[0] if parts.interactive_sessions else None,
        context_filename=legacy,
        interactive_args=tuple(parts.interactive[0]) if parts.interactive else None,
        resources=f.resources(
            parts.resources[0].cpu, parts.resources[0].memory, parts.resources[0].gpu
        )
        if parts.resources
        else m.Resources(),
    )


def _args(spec: v3.KitV3) -> dict[str, m.ArgDecl]:
    return {
        k: m.ArgDecl(
            default=a.default,
            required=a.required,
            description=a.description,
            enum=tuple(a.enum) if a.enum is not None else None,
            pattern=a.pattern,
            env=a.env,
        )
        for k, a in spec.args.items()
    }


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


# ---- 2. selection -------------------------------------------------------------------


def _why_not(entry: Entry) -> tuple[str, str]:
    """(issue code, reason) for a type sandkit does not provide."""
    key = (entry.name, entry.version)
    if entry.sandbox and key in v3.NOT_IMPLEMENTED:
        return NOT_IMPLEMENTED, f"not implemented in sandkit yet ({v3.NOT_IMPLEMENTED[key]})"
    if entry.sandbox and key in v3.UNSUPPORTED:
        return UNSUPPORTED_CAPABILITY, f"not supported by sandkit: {v3.UNSUPPORTED[key]}"
    return UNSUPPORTED_CAPABILITY, "not supported by sandkit"


def _select(constructs: list[Construct], ctx: Context) -> list[Construct]:
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
