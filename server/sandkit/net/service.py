"""Assemble a proxy from kits: the merged network rules and credentials, real values from
the host, placeholders for the guest. Used by `sandkit proxy serve` and the supervisor."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandkit.errors import ProxyError
from sandkit.kits.composition import merge_content
from sandkit.kits.issues import KitError, KitIssue
from sandkit.kits.model import KitContent
from sandkit.kits.resolution import load_ref
from sandkit.logs import logger
from sandkit.net.actions import DefaultPolicy
from sandkit.net.decisions import DecisionLog
from sandkit.net.guard import Resolver
from sandkit.net.inject import BoundCredential, Injector
from sandkit.net.policy import Policy, baseline_rules
from sandkit.net.proxy import ProxySettings
from sandkit.net.proxy.oauth import OAuthBinding
from sandkit.net.secrets import SecretStore, credential_value, placeholder
from sandkit.net.tls import CertificateAuthority
from sandkit.net.tokens import TokenStore
from sandkit.paths import config_dir

log = logger(__name__)


def merged_kits(
    refs: Sequence[str], args: Mapping[str, str] | None = None
) -> tuple[KitContent, list[KitIssue]]:
    """Network rules and credentials of any kits (agent or mixin), merged in order."""
    loaded = [load_ref(ref, args, require_args=True) for ref in refs]
    issues: list[KitIssue] = []
    content = merge_content([k.kit for k in loaded], issues)
    if issues:
        raise KitError(issues)
    return content, [w for k in loaded for w in k.warnings]


def build_policy(
    content: KitContent, default: DefaultPolicy, registry_hosts: Sequence[str] = ()
) -> Policy:
    baseline = baseline_rules(registry_hosts) if default is DefaultPolicy.BALANCED else ()
    return Policy(content.network.allow, content.network.deny, default, baseline)


def bind_credentials(
    content: KitContent,
    store: SecretStore | None = None,
    environ: Mapping[str, str] | None = None,
    placeholders: Mapping[str, str] | None = None,
) -> list[BoundCredential]:
    """Real values (``environ``: the host environment the client handed over, else this
    process's) and placeholders (kept from ``placeholders``: the guest already has them)."""
    store = store or SecretStore()
    kept = placeholders or {}
    return [
        BoundCredential(
            c, credential_value(c, store, environ), kept.get(c.service) or placeholder(c.service)
        )
        for c in content.credentials
    ]


def bind_oauth(
    content: KitContent, sandbox: str, tokens: TokenStore | None = None
) -> list[OAuthBinding]:
    """The OAuth credentials, with this sandbox's sentinels (stable across restarts)."""
    tokens = tokens or TokenStore()
    out = []
    for c in content.credentials:
        if c.oauth is None:
            continue
        if c.oauth.passthrough:
            log.warning(
                "credential '%s' uses oauth passthrough: the real token goes into the sandbox",
                c.service,
            )
            continue
        sentinels = tokens.sentinels(sandbox, c.service, c.oauth)
        scoped = sandbox if sandbox != "-" else None
        out.append(OAuthBinding(c.service, c.oauth, sentinels, tokens, scoped))
    return out


# The system's trust alone, per OpenSSL's variables that locate it (read at load).
_SYSTEM_TLS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def upstream_context(extra_ca: Path | None) -> ssl.SSLContext:
    """The proxy's client context for upstream TLS. The system's alone is made once per
    process and shared (loading the system bundle costs ~30 ms, which an adoption would
    otherwise pay again); one with an extra CA is made each time."""
    if extra_ca is None:
        where = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if where not in _SYSTEM_TLS:
            _SYSTEM_TLS[where] = ssl.create_default_context()
        return _SYSTEM_TLS[where]
    ctx = ssl.create_default_context()
    from sandkit.net.cafile import read_certificates  # cryptography: only for one

    try:
        ctx.load_verify_locations(cadata=read_certificates(extra_ca).decode())
    except (OSError, ssl.SSLError) as exc:
        raise ProxyError(f"cannot load the upstream CA {extra_ca}: {exc}") from None
    return ctx


def build_settings(
    content: KitContent,
    *,
    default: DefaultPolicy,
    log_path: Path | None,
    pins: Mapping[str, str],
    upstream_ca: Path | None,
    sandbox: str = "-",
    registry_hosts: Sequence[str] = (),
    ca_dir: Path | None = None,
    store: SecretStore | None = None,
    environ: Mapping[str, str] | None = None,
    placeholders: Mapping[str, str] | None = None,
    tokens: TokenStore | None = None,
) -> tuple[ProxySettings, list[BoundCredential]]:
    bound = bind_credentials(content, store, environ, placeholders)
    try:
        resolver = Resolver(pins)
    except ValueError as exc:
        raise ProxyError(f"--resolve: {exc}") from None
    settings = ProxySettings(
        policy=build_policy(content, default, registry_hosts),
        ca=CertificateAuthority.load_or_create(ca_dir or config_dir() / "ca"),
        injector=Injector(bound),
        log=DecisionLog(log_path),
        resolver=resolver,
        upstream_tls=upstream_context(upstream_ca),
        sandbox=sandbox,
        oauth=tuple(bind_oauth(content, sandbox, tokens)),
    )
    return settings, bound
