"""schemaVersion "1" → canonical kit: the legacy blocks fold into v2's shapes.

The four v1 credential blocks (network.serviceDomains, network.serviceAuth,
credentials.sources, environment.proxyManaged) become one canonical credential per
service; each legacy block gets one warning that points at `sandkit kit migrate`."""

from __future__ import annotations

import re

from sandkit.kits import model as m
from sandkit.kits import spec_v1 as v1
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

# The oldest `egress:` shim's default headers (sbx): service → (header, format).
DEFAULT_AUTH: dict[str, tuple[str, str]] = {
    "anthropic": ("x-api-key", "%s"),
    "google": ("x-goog-api-key", "%s"),
    "github": ("Authorization", "token %s"),
    **dict.fromkeys(
        ("openai", "xai", "nebius", "mistral", "groq", "cursor", "factory"),
        ("Authorization", "Bearer %s"),
    ),
}

LEGACY_BLOCKS: dict[str, str] = {
    "agent": "'agent:' is the v1 name of 'sandbox:'",
    "network": "v2 writes network rules under 'permissions.network' and credentials as 'credentials:'",
    "credentials": "v2 credentials are a list with 'apiKey' (the host source is the secret store)",
    "commands": "v2 calls this block 'setup' (install, startup, files)",
    "memory": "v2 writes this as 'agentInstructions.content'",
    "agentContext": "v2 writes this as 'agentInstructions.content'",
    "caps": "v2 writes network rules under 'permissions.network'",
    "secrets": "v2 declares each secret under 'credentials:'",
    "egress": "v2 declares each injected domain under 'credentials[].apiKey.inject'",
    "oauth": "v2 nests oauth inside its credential",
    "publishedPorts": "v2 calls this 'ports'",
}


def convert(spec: v1.KitV1, ctx: Context) -> m.Kit:
    f = Folder(ctx, spec.name)
    _warn_legacy(spec, ctx)
    is_agent = spec.kind in ("agent", "sandbox")
    block = _block(spec, ctx, is_agent)
    net = spec.network or v1.Network()
    allow_src, allow_paths, deny_src, deny_paths = _network_sources(spec, ctx, net)
    allow = f.rules(allow_src, (), index=allow_paths)
    creds = _checked_credentials(spec, ctx, f, net, allow)
    env = spec.environment or v1.Environment()
    context = spec.agentContext or spec.memory
    _warn_ignored(spec, ctx)
    ports = [*net.publishedPorts, *spec.publishedPorts]
    agent = _agent(spec, ctx, block) if is_agent and block is not None else None
    deny = f.rules(deny_src, (), index=deny_paths)
    environment = f.environment(env.variables, ("environment", "variables"))
    cmds = spec.commands or v1.Commands()
    install, startup, files = f.commands(
        "commands", cmds.install, cmds.startup, "initFiles", cmds.initFiles
    )
    return m.Kit(
        name=spec.name,
        kind=m.KitKind.AGENT if is_agent else m.KitKind.MIXIN,
        schema_version="1",
        file=ctx.file,
        origin=f.origin(ORIGIN_KEY),
        display_name=spec.displayName,
        description=spec.description,
        version=spec.version,
        source_url=spec.sourceURL,
        agent=agent,
        extends=spec.extends if is_agent else None,
        requires_agent=spec.requires.agent if spec.requires and not is_agent else None,
        network=m.Network(allow=tuple(allow), deny=tuple(deny)),
        credentials=tuple(c for c, _ in creds),
        environment=environment,
        install=install,
        startup=startup,
        files=files,
        agent_context=(
            m.AgentContext(
                kit=spec.name,
                content=context,
                filename=block.aiFilename if block and is_agent else None,
            ),
        )
        if context
        else (),
        ports=tuple(
            m.Port(container=p.container, protocol=p.protocol or "tcp", name=p.name) for p in ports
        ),
        volumes=tuple(volumes_of(_volumes(spec))),
        privileged=bool(spec.security and spec.security.privileged),
    )


def _warn_legacy(spec: v1.KitV1, ctx: Context) -> None:
    """One warning per legacy block, pointing at `sandkit kit migrate`."""
    for key, note in LEGACY_BLOCKS.items():
        if getattr(spec, key):
            ctx.warn(
                (key,),
                f"schemaVersion 1 syntax: {note}; `sandkit kit migrate` prints the v2 form",
                code="legacy",
            )


def _network_sources(
    spec: v1.KitV1, ctx: Context, net: v1.Network
) -> tuple[list[str], list[Path], list[str], list[Path]]:
    """network.allowedDomains/deniedDomains and caps.network's, with their paths; an
    entry both allowed and denied is an error."""
    allow_paths: list[Path] = [
        ("network", "allowedDomains", i) for i in range(len(net.allowedDomains))
    ]
    deny_paths: list[Path] = [
        ("network", "deniedDomains", i) for i in range(len(net.deniedDomains))
    ]
    allow_src, deny_src = list(net.allowedDomains), list(net.deniedDomains)
    if spec.caps:
        allow_src += spec.caps.network.allow
        allow_paths += [
            ("caps", "network", "allow", i) for i in range(len(spec.caps.network.allow))
        ]
        deny_src += spec.caps.network.deny
        deny_paths += [("caps", "network", "deny", i) for i in range(len(spec.caps.network.deny))]
    check_allow_deny_overlap(
        ctx, allow_src, list(zip(deny_src, deny_paths, strict=True)), error=True
    )
    return allow_src, allow_paths, deny_src, deny_paths


def _checked_credentials(
    spec: v1.KitV1, ctx: Context, f: Folder, net: v1.Network, allow: list[m.NetworkRule]
) -> list[tuple[m.Credential, Path]]:
    """The credentials, checked against each other, the allowed domains and the
    proxy-managed variables."""
    creds = _credentials(spec, ctx, f)
    check_duplicate_services(ctx, [(c.service, p) for c, p in creds])
    check_injects_allowed(
        ctx,
        [(d.lower(), ("network", "serviceDomains", d), True) for d in net.serviceDomains],
        allow,
    )
    env = spec.environment or v1.Environment()
    known_envs = {c.env for c, _ in creds}
    for i, name in enumerate(env.proxyManaged):
        if name not in known_envs:
            ctx.warn(
                ("environment", "proxyManaged", i),
                f"'{name}' is proxy-managed but no "
                "credential source reads it, so no secret is ever injected for it",
                at_key=False,
            )
    return creds


def _warn_ignored(spec: v1.KitV1, ctx: Context) -> None:
    if spec.settings and spec.settings.containerSettings:
        ctx.warn(
            ("settings",), "'settings.containerSettings' is agent-specific sbx behaviour; ignored"
        )
    if spec.kitDir is not None:
        ctx.warn(("kitDir",), "'kitDir' is ignored: kit files come from files/ beside spec.yaml")


def _agent(spec: v1.KitV1, ctx: Context, block: v1.Agent) -> m.Agent:
    """The agent (or sandbox) block of an agent kit."""
    res = block.resources
    ep = block.entrypoint or v1.Entrypoint()
    check_image(ctx, ("agent" if spec.agent is not None else "sandbox", "image"), block.image)
    return m.Agent(
        image=block.image,
        entrypoint=tuple(ep.run),
        args=tuple(ep.args),
        interactive_args=tuple(ep.ttyArgs) if ep.ttyArgs else None,
        context_filename=block.aiFilename,
        resources=m.Resources(
            cpus=res.cpu, memory_bytes=res.memoryMB << 20 if res.memoryMB else None, gpu=res.gpu
        )
        if res
        else m.Resources(),
    )


def _volumes(spec: v1.KitV1) -> list[tuple[str, bool, None, None]]:
    return [(p, True, None, None) for p in spec.tmpfs] + [
        (p, False, None, None) for p in spec.volumes
    ]


def _block(spec: v1.KitV1, ctx: Context, is_agent: bool) -> v1.Agent | None:
    if spec.agent is not None and spec.sandbox is not None:
        ctx.error(("sandbox",), "give 'agent:' or 'sandbox:', not both", at_key=True)
    block = spec.agent or spec.sandbox
    key = "agent" if spec.agent is not None else "sandbox"
    if is_agent and block is None and spec.extends is None:
        ctx.error(
            ("kind",),
            f"a kind '{spec.kind}' kit needs an 'agent:' block with 'image'",
            at_key=True,
            code="missing-key",
        )
    if not is_agent and block is not None:
        ctx.error((key,), f"a mixin cannot have an '{key}:' block", at_key=True)
    return block


def _service_for_env(name: str) -> str:
    if name in ("GH_TOKEN", "GITHUB_TOKEN"):
        return "github"
    return re.sub(r"_(api_key|token|key|secret)$", "", name.lower())


def _credentials(spec: v1.KitV1, ctx: Context, f: Folder) -> list[tuple[m.Credential, Path]]:
    net = spec.network or v1.Network()
    sources = spec.credentials.sources if spec.credentials else {}
    managed = set(spec.environment.proxyManaged) if spec.environment else set()
    domains = _service_domains(spec, net)
    services = list(
        dict.fromkeys([*domains, *sources, *(_service_for_env(s) for s in spec.secrets)])
    )
    if spec.oauth is not None and spec.oauth.service not in services:
        services.append(spec.oauth.service)
    out: list[tuple[m.Credential, Path]] = []
    for service in services:
        injects = _injects(service, domains.get(service, []), net, ctx)
        src = sources.get(service)
        env = (
            src.env[0]
            if src and src.env
            else next((s for s in spec.secrets if _service_for_env(s) == service), None)
        )
        oauth = (
            _oauth(spec.oauth) if spec.oauth is not None and spec.oauth.service == service else None
        )
        anchor: Path = (
            ("credentials", "sources", service)
            if src
            else domains[service][0][1]
            if service in domains
            else ("oauth",)
            if oauth
            else ("secrets",)
        )
        credential = m.Credential(
            service=service,
            required=bool(src and src.required),
            env=env,
            proxy_managed=(env in managed) or (env in spec.secrets),
            inject=tuple(injects),
            oauth=oauth,
            sources=_source(src) if src else None,
            origin=f.origin(anchor),
        )
        out.append((credential, anchor))
    for service in net.serviceAuth:
        if service not in domains:
            ctx.warn(
                ("network", "serviceAuth", service),
                f"service '{service}' has a header but no "
                "network.serviceDomains entry, so it is never injected",
            )
    return out


def _service_domains(spec: v1.KitV1, net: v1.Network) -> dict[str, list[tuple[str, Path]]]:
    """service → [(domain, path of its entry)]: network.serviceDomains sorted by domain
    as sbx does, then egress."""
    domains: dict[str, list[tuple[str, Path]]] = {}
    for domain in sorted(net.serviceDomains):
        domains.setdefault(net.serviceDomains[domain], []).append(
            (domain.lower(), ("network", "serviceDomains", domain))
        )
    for domain, service in spec.egress.items():
        domains.setdefault(service, []).append((domain, ("egress", domain)))
    return domains


def _injects(
    service: str, domains: list[tuple[str, Path]], net: v1.Network, ctx: Context
) -> list[m.Inject]:
    """The header injected on each of the service's domains (network.serviceAuth, else
    the oldest shim's default); a domain with no header is an error."""
    injects = []
    for domain, path in domains:
        auth = net.serviceAuth.get(service)
        header, fmt = (
            (auth.headerName, auth.valueFormat) if auth else DEFAULT_AUTH.get(service, ("", ""))
        )
        if not header:
            ctx.error(
                path,
                f"service '{service}' has no header to inject: add "
                f"network.serviceAuth.{service}.headerName",
                at_key=True,
            )
            continue
        injects.append(m.Inject(domain=domain, header=header, format=fmt))
    return injects


def _oauth(o: v1.OAuth) -> m.OAuthSpec:
    return m.OAuthSpec(
        token_host=o.tokenEndpoint.host,
        token_path=o.tokenEndpoint.path,
        access_sentinel=o.sentinels.accessToken if o.sentinels else None,
        refresh_sentinel=o.sentinels.refreshToken if o.sentinels else None,
        credential_file=o.credentialFile.path if o.credentialFile else None,
        credential_template=o.credentialFile.template if o.credentialFile else None,
        credential_structure=o.credentialFile.structure if o.credentialFile else None,
        response_fields=dict(o.responseFields),
        passthrough=o.passthroughResponse,
    )


def _source(src: v1.Source) -> m.CredentialSource:
    return m.CredentialSource(
        env=tuple(src.env),
        file=src.file.path if src.file else None,
        parser=src.file.parser if src.file else "",
        priority=src.priority,
    )
