"""Pieces of the fold to the canonical model that every schema version shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sandkit.kits import model as m
from sandkit.kits import spec_v2 as v2
from sandkit.kits.hostrules import parse_rule
from sandkit.kits.sizes import parse_size
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import Path

# Names sandkit itself sets in the guest (any case). sandkit keeps its own values: the
# guest reaches nothing but its proxy whatever they say, so a kit's value (published kits
# set them to "" to work around a client bug) could only cut the agent off.
PROXY_VARS = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}
PROXY_ENV = "proxy-env"
RESERVED_PREFIXES = ("DASH_", "SBX_", "DOCKER_", "SANDKIT_")
INJECT_NOT_ALLOWED = "inject-not-allowed"
RUNTIME_OWNED = {"HOME", "USER", "SHELL", "PATH", "LD_PRELOAD", "LD_LIBRARY_PATH"}


class Folder:
    """Builds canonical items for one kit, with origins taken from the spec's positions."""

    def __init__(self, ctx: Context, kit: str) -> None:
        self.ctx = ctx
        self.kit = kit

    def origin(self, path: Path) -> m.Origin:
        span = self.ctx.located.value_span(path)
        return m.Origin(
            kit=self.kit, file=self.ctx.file, line=span.line + 1, column=span.column + 1
        )

    def rules(
        self,
        patterns: Sequence[str],
        path: Path,
        phase: m.Phase = m.Phase.ANY,
        methods: Sequence[str] = (),
        paths: Sequence[str] = (),
        index: Iterable[Path] | None = None,
    ) -> list[m.NetworkRule]:
        where = list(index) if index is not None else [(*path, i) for i in range(len(patterns))]
        return [
            m.NetworkRule(
                pattern=p,
                phase=phase,
                methods=tuple(methods),
                paths=tuple(paths),
                origin=self.origin(at),
            )
            for p, at in zip(patterns, where, strict=True)
        ]

    def environment(self, variables: dict[str, str], path: Path) -> dict[str, str]:
        """The kit's variables, checked; proxy variables are dropped (with a warning)."""
        for name in variables:
            check_env_name(self.ctx, name, (*path, name))
        return {k: v for k, v in variables.items() if k.upper() not in PROXY_VARS}

    def command(
        self,
        command: str | Sequence[str],
        user: str,
        path: Path,
        *,
        background: bool = False,
        env: Sequence[str] = (),
        description: str = "",
    ) -> m.Command:
        argv = ("sh", "-c", command) if isinstance(command, str) else tuple(command)
        return m.Command(
            argv=argv,
            user=user,
            background=background,
            env=tuple(env),
            description=description,
            origin=self.origin(path),
        )

    def setup_file(self, f: v2.SetupFile, path: Path, overwrite: bool) -> m.SetupFile:
        return m.SetupFile(
            path=f.path,
            content=f.content,
            mode=int(f.mode, 8),
            overwrite=overwrite,
            description=f.description,
            origin=self.origin(path),
        )

    def commands(
        self,
        section: str,
        install: Sequence[v2.Install],
        startup: Sequence[v2.Startup],
        files_key: str,
        files: Sequence[v2.SetupFile],
    ) -> tuple[tuple[m.Command, ...], tuple[m.Command, ...], tuple[m.SetupFile, ...]]:
        """A kit's install and startup commands and its setup files, from the section
        that holds them (v1 `commands` with `initFiles`, v2 `setup` with `files`)."""
        return (
            tuple(
                self.command(c.command, c.user, (section, "install", i), description=c.description)
                for i, c in enumerate(install)
            ),
            tuple(
                self.command(
                    c.command,
                    c.user,
                    (section, "startup", i),
                    background=c.background,
                    description=c.description,
                )
                for i, c in enumerate(startup)
            ),
            tuple(
                self.setup_file(x, (section, files_key, i), overwrite=not x.onlyIfMissing)
                for i, x in enumerate(files)
            ),
        )

    def credential(
        self,
        c: v2.Credential,
        path: Path,
        *,
        required: bool,
        phases: Sequence[m.Phase] = (m.Phase.RUNTIME,),
    ) -> m.Credential:
        inject: list[m.Inject] = []
        env, proxy_managed = None, False
        if c.apiKey is not None:
            env, proxy_managed = c.apiKey.name, c.apiKey.proxyManaged
            inject = [inject_of(i) for i in c.apiKey.inject]
        if c.provider is not None:
            self.ctx.warn((*path, "provider"), "'provider' is reserved and has no effect")
        if c.oauth is not None and c.oauth.passthrough:
            self.ctx.warn(
                (*path, "oauth", "passthrough"),
                f"oauth passthrough: the real '{c.service}' tokens go into the sandbox, where "
                "anything running there can read and keep them; drop it to keep them on the host",
            )
        return m.Credential(
            service=c.service,
            description=c.description,
            required=required,
            env=env,
            proxy_managed=proxy_managed,
            inject=tuple(inject),
            oauth=oauth_of(c.oauth) if c.oauth else None,
            phases=tuple(phases),
            origin=self.origin((*path, "service")),
        )

    def resources(self, cpu: float | None, memory: str | None, gpu: str | None) -> m.Resources:
        return m.Resources(cpus=cpu, memory_bytes=parse_size(memory) if memory else None, gpu=gpu)


def inject_of(i: v2.Inject) -> m.Inject:
    if i.scheme == "bearer":
        return m.Inject(domain=i.domain, header=i.header or "Authorization", format="Bearer %s")
    if i.scheme == "basic":
        return m.Inject(
            domain=i.domain,
            header=i.header or "Authorization",
            format="Basic %s",
            basic_username=i.username,
        )
    assert i.header is not None  # the spec model requires header or scheme
    return m.Inject(domain=i.domain, header=i.header, format=i.format or "%s")


def oauth_of(o: v2.OAuth) -> m.OAuthSpec:
    f = o.credentialFile
    return m.OAuthSpec(
        token_host=o.tokenEndpoint.host,
        token_path=o.tokenEndpoint.path,
        resource_hosts=tuple(o.resourceHosts),
        access_sentinel=o.sentinels.accessToken if o.sentinels else None,
        refresh_sentinel=o.sentinels.refreshToken if o.sentinels else None,
        credential_file=f.path if f else None,
        credential_structure=f.structure if f else None,
        credential_template=f.template if f else None,
        credential_format=f.format if f else None,
        response_fields=dict(o.responseFields),
        passthrough=o.passthrough,
    )


def check_env_name(ctx: Context, name: str, path: Path) -> None:
    upper = name.upper()
    if upper in PROXY_VARS:
        ctx.warn(
            path,
            f"'{name}' is ignored: sandkit keeps its own proxy settings in the sandbox (its "
            "guest reaches nothing but sandkit's proxy, so this kit's value could only cut "
            "the agent off); remove it from the kit",
            code=PROXY_ENV,
        )
    elif upper.startswith(RESERVED_PREFIXES):
        ctx.error(
            path,
            f"'{name}' uses a reserved prefix ({', '.join(RESERVED_PREFIXES)}); "
            "choose another name",
            at_key=True,
        )
    elif upper in RUNTIME_OWNED:
        ctx.warn(path, f"'{name}' is managed by the sandbox runtime and may be overridden")


def check_duplicate_services(ctx: Context, creds: Sequence[tuple[str, Path]]) -> None:
    seen: set[str] = set()
    for service, path in creds:
        if service in seen:
            ctx.error(path, f"credential service '{service}' is declared twice in this kit")
        seen.add(service)


def check_allow_deny_overlap(
    ctx: Context, allow: Sequence[str], deny: Sequence[tuple[str, Path]], *, error: bool
) -> None:
    allowed = {a.lower() for a in allow}
    for pattern, path in deny:
        if pattern.lower() in allowed:
            message = f"'{pattern}' is both allowed and denied"
            if error:
                ctx.error(path, message + "; remove it from one list")
            else:
                ctx.warn(path, message + "; deny wins", at_key=False)


def check_injects_allowed(
    ctx: Context, injects: Sequence[tuple[str, Path, bool]], allow: Sequence[m.NetworkRule]
) -> None:
    """An inject domain nobody allows can never be reached: say so where it is written.

    ``injects`` holds (domain, where it is written, whether that place is a key)."""
    rules = [parse_rule(r.pattern) for r in allow]
    for domain, path, at_key in injects:
        if not any(r.matches(domain, 443) for r in rules):
            ctx.warn(
                path,
                f"'{domain}' is not in this kit's allow list; unless another kit "
                "allows it, requests to it are blocked and the credential is never used",
                at_key=at_key,
                code=INJECT_NOT_ALLOWED,
            )


def volumes_of(
    items: Iterable[tuple[str, bool, str | None, str | None]],
    *,
    strict: bool = False,
    origin: m.Origin | None = None,
) -> list[m.Volume]:
    return [
        m.Volume(
            path=p,
            tmpfs=t,
            size_bytes=parse_size(s) if s else None,
            mode=int(mo, 8) if mo else None,
            strict=strict,
            origin=origin,
        )
        for p, t, s, mo in items
    ]
