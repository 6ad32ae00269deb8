"""schemaVersion "2" → canonical kit."""

from __future__ import annotations

from sandkit.kits import model as m
from sandkit.kits import spec_v2 as v2
from sandkit.kits.convert_common import (
    Folder,
    check_allow_deny_overlap,
    check_duplicate_services,
    check_injects_allowed,
    volumes_of,
)
from sandkit.kits.images import check_image
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import Path

ORIGIN_KEY = ("name",)


def convert(spec: v2.KitV2, ctx: Context) -> m.Kit:
    f = Folder(ctx, spec.name)
    is_agent = spec.kind == "sandbox"
    agent = _agent(spec, ctx, f) if is_agent else None
    _check_kind(spec, ctx, is_agent)
    network = spec.permissions.network if spec.permissions else v2.NetworkRules()
    base = ("permissions", "network")
    allow = f.rules(network.allow, (*base, "allow"))
    check_allow_deny_overlap(
        ctx,
        network.allow,
        [(d, (*base, "deny", i)) for i, d in enumerate(network.deny)],
        error=False,
    )
    creds = _checked_credentials(spec, ctx, f, allow)
    _check_licenses(spec, ctx)
    context = spec.agentInstructions
    if context and context.filename and not is_agent:
        ctx.warn(
            ("agentInstructions", "filename"),
            "'filename' is ignored on a mixin: mixin instructions go under kits-agent-context/",
        )
    ports = [*spec.ports, *spec.publishedPorts]
    deny = f.rules(network.deny, (*base, "deny"))
    environment = _environment(spec, f)
    setup = spec.setup or v2.Setup()
    install, startup, files = f.commands(
        "setup", setup.install, setup.startup, "files", setup.files
    )
    return m.Kit(
        name=spec.name,
        kind=m.KitKind.AGENT if is_agent else m.KitKind.MIXIN,
        schema_version="2",
        file=ctx.file,
        origin=f.origin(ORIGIN_KEY),
        display_name=spec.displayName,
        description=spec.description,
        version=spec.version,
        source_url=spec.sourceURL,
        agent=agent,
        args=_args(spec),
        extends=spec.extends if is_agent else None,
        requires_agent=spec.requires.agent if spec.requires and not is_agent else None,
        network=m.Network(allow=tuple(allow), deny=tuple(deny)),
        credentials=tuple(c for c, _ in creds),
        environment=environment,
        install=install,
        startup=startup,
        files=files,
        agent_context=_agent_context(spec.name, context, is_agent),
        ports=tuple(
            m.Port(container=p.container, protocol=p.protocol or "tcp", name=p.name) for p in ports
        ),
        volumes=tuple(
            volumes_of((v.path, v.type == "tmpfs", v.size, v.mode) for v in spec.volumes)
        ),
        privileged=bool(spec.security and spec.security.privileged),
    )


def _check_kind(spec: v2.KitV2, ctx: Context, is_agent: bool) -> None:
    """The blocks that belong to sandbox kits only, or to mixins only."""
    if not is_agent:
        for key in ("sandbox", "extends", "mixins"):
            if getattr(spec, key):
                ctx.error(
                    (key,), f"'{key}' belongs to sandbox kits; a mixin cannot have it", at_key=True
                )
    elif spec.requires is not None:
        ctx.error(
            ("requires",), "'requires' belongs to mixins; a sandbox kit cannot have it", at_key=True
        )
    if spec.mixins and is_agent:
        ctx.warn(("mixins",), "'mixins' is accepted but not applied: pass mixins with --kit")


def _checked_credentials(
    spec: v2.KitV2, ctx: Context, f: Folder, allow: list[m.NetworkRule]
) -> list[tuple[m.Credential, Path]]:
    """credentials:, checked for a service named twice and for injects to domains the
    kit does not allow."""
    creds: list[tuple[m.Credential, Path]] = [
        (f.credential(c, ("credentials", i), required=c.required), ("credentials", i))
        for i, c in enumerate(spec.credentials)
    ]
    check_duplicate_services(ctx, [(c.service, (*p, "service")) for c, p in creds])
    check_injects_allowed(
        ctx,
        [
            (inj.domain, ("credentials", ci, "apiKey", "inject", n, "domain"), False)
            for ci, c in enumerate(spec.credentials)
            if c.apiKey
            for n, inj in enumerate(c.apiKey.inject)
        ],
        allow,
    )
    return creds


def _environment(spec: v2.KitV2, f: Folder) -> dict[str, str]:
    if not spec.environment:
        return {}
    return f.environment(spec.environment.variables, ("environment", "variables"))


def _check_licenses(spec: v2.KitV2, ctx: Context) -> None:
    seen: set[str] = set()
    for i, lic in enumerate(spec.licenses or ()):
        if lic in seen:
            ctx.error(("licenses", i), f"license '{lic}' is listed twice")
        seen.add(lic)


def _args(spec: v2.KitV2) -> dict[str, m.ArgDecl]:
    return {
        k: m.ArgDecl(
            default=a.default,
            required=a.required,
            description=a.description,
            enum=tuple(a.enum) if a.enum is not None else None,
            pattern=a.pattern,
        )
        for k, a in spec.args.items()
    }


def _agent_context(
    kit: str, context: v2.AgentInstructions | None, is_agent: bool
) -> tuple[m.AgentContext, ...]:
    if not (context and context.content):
        return ()
    return (
        m.AgentContext(
            kit=kit,
            content=context.content,
            filename=context.filename if is_agent else None,
            directory=context.directory if is_agent else None,
        ),
    )


def _agent(spec: v2.KitV2, ctx: Context, f: Folder) -> m.Agent | None:
    block = spec.sandbox
    if block is None:
        if spec.extends is None:
            ctx.error(
                ("kind",),
                "a sandbox kit needs a 'sandbox:' block (with 'image' and "
                "usually 'entrypoint'), or 'extends: AGENT' to build on a built-in one",
                at_key=True,
                code="missing-key",
            )
        return None
    if block.image is None and spec.extends is None:
        ctx.error(
            ("sandbox",),
            "missing required key 'image' (or use 'extends: AGENT')",
            at_key=True,
            code="missing-key",
        )
    if block.build is not None and block.image is None:
        ctx.error(("sandbox", "build"), "'build' needs 'image' (the tag to build)", at_key=True)
    check_image(ctx, ("sandbox", "image"), block.image)
    args: list[str] = []
    interactive: list[str] | None = None
    if isinstance(block.command, list):
        args = block.command
    elif block.command is not None:
        args = block.command.default
        interactive = block.command.interactive or None
    res = block.resources
    instructions = spec.agentInstructions
    # With a directory the profile is explicit (kits.context), not the legacy filename.
    filename = instructions.filename if instructions and not instructions.directory else None
    return m.Agent(
        image=block.image,
        entrypoint=tuple(block.entrypoint or ()),
        args=tuple(args),
        interactive_args=tuple(interactive) if interactive is not None else None,
        context_filename=filename,
        resources=f.resources(res.cpu, res.memory, res.gpu) if res else m.Resources(),
    )
