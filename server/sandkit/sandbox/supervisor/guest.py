"""What the guest is given: its environment (the kits' variables, placeholders for the
secrets, the CA bundle for every TLS stack), the sandbox CA in its trust store, the kits
applied, and, for a restored VM, its own name, entropy and clock."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.errors import SandkitError
from sandkit.hostconfig import local_cas, registry_credentials, registry_hosts
from sandkit.net.actions import Action
from sandkit.net.cafile import read_certificates
from sandkit.net.secrets import SecretStore
from sandkit.sandbox.store import Config
from sandkit.sandbox.supervisor import egress
from sandkit.sandbox.supervisor.approvals import load_approvals

if TYPE_CHECKING:
    from sandkit.kits.resolution import Resolution
    from sandkit.net.inject import BoundCredential
    from sandkit.net.proxy import ProxySettings
    from sandkit.sandbox.supervisor.process import Supervisor

GUEST_CA = "/usr/local/share/ca-certificates/sandkit-proxy.crt"
GUEST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CA_BUNDLE_VARS = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
)


def resolve(config: Config) -> Resolution:
    from sandkit.kits import resolve  # heavy imports: after QEMU is on its way

    return resolve(config.agent, config.kits, config.kit_args, defaults=config.arg_defaults)


async def proxy_settings(sup: Supervisor, resolution: Resolution | None = None) -> ProxySettings:
    """The composed kits' policy and credentials, and what the guest sees of them."""
    from sandkit.net.actions import DefaultPolicy
    from sandkit.net.service import build_settings

    c = sup.config
    if resolution is None:
        resolution = await asyncio.to_thread(resolve, c)
    sup.resolution = resolution
    settings, bound = build_settings(
        resolution.sandbox,
        default=DefaultPolicy(c.default_policy),
        log_path=sup.sandbox.dir / "decisions.jsonl",
        pins=c.resolve,
        upstream_ca=Path(c.upstream_ca) if c.upstream_ca else None,
        sandbox=c.name,
        registry_hosts=registry_hosts(c.arg_defaults),
        environ=egress.host_environ(sup),
        store=SecretStore(sandbox=c.name),
    )
    # Logins that were in the host's registry URLs: the proxy sends them (the guest got
    # the URLs without them), through the same injector as the kits' credentials.
    logins = registry_credentials(c.arg_defaults)
    if logins:
        from sandkit.net.inject import BoundCredential, Injector
        from sandkit.net.secrets import placeholder

        bound = [*bound, *(BoundCredential(k, v, placeholder(k.service)) for k, v in logins)]
        settings.injector = Injector(bound)
    sup.guest_env = guest_env(resolution, bound)
    settings.ask, settings.ask_timeout = sup.approvals.ask, c.ask_timeout
    for host, action in load_approvals(sup.sandbox.dir).items():  # "allow for this sandbox"
        settings.policy = settings.policy.with_approval(host, Action(action))
    sup.ca_pem = settings.ca.cert_path.read_bytes()
    if c.upstream_ca:
        # Only its certificates: the file goes into the guest's trust store.
        sup.ca_pem += b"\n" + read_certificates(Path(c.upstream_ca))
    if c.host_cas:
        sup.ca_pem += b"\n" + local_cas()
    return settings


def guest_env(resolution: Resolution, bound: list[BoundCredential]) -> dict[str, str]:
    """What every process in the guest sees: the kits' variables, placeholders where the
    real secrets would be, and the sandbox CA for every TLS stack that has its own."""
    env = dict(resolution.sandbox.environment)
    env.update(
        {
            b.credential.env: b.placeholder
            for b in bound
            if b.credential.env
            and b.credential.proxy_managed
            # No API key but an OAuth block: the agent signs in from its credential
            # file, which a placeholder key in its environment would override.
            and (b.value is not None or b.credential.oauth is None)
        }
    )
    env.update(dict.fromkeys(CA_BUNDLE_VARS, GUEST_CA_BUNDLE))
    env["NODE_EXTRA_CA_CERTS"] = GUEST_CA
    return env


async def trust_ca(sup: Supervisor) -> None:
    """Install the sandbox CA (and an upstream CA) in the guest's trust store: once per
    disk, recorded by a marker named after the certificates, so the bundle (large)
    never travels over the channel."""
    assert sup.machine is not None and sup.machine.channel is not None
    channel = sup.machine.channel
    pem = sup.ca_pem
    marker = f"/var/lib/sandkit/ca-{hashlib.sha256(pem).hexdigest()[:16]}"
    try:
        await channel.write_file(GUEST_CA, pem)
        if await channel.read_file(marker) is None:
            await channel.write_file(GUEST_CA_BUNDLE, b"\n" + pem, append=True)
            await channel.write_file(marker, b"")
    except SandkitError as exc:
        raise SandkitError(f"cannot install the sandbox CA in the guest: {exc}") from None


async def apply_kits(sup: Supervisor, first_boot_only: bool = False) -> None:
    from sandkit.sandbox.kitapply import apply_kits

    assert sup.machine is not None and sup.machine.channel is not None
    assert sup.resolution is not None
    await apply_kits(
        sup.machine.channel,
        sup.resolution.sandbox,
        list(sup.resolution.loaded),
        sup.guest_env,
        sup.config.workspace,
        sup.sandbox.share if sup.config.workspace else None,
        set_phase=lambda phase: egress.set_phase(sup, phase),
        first_boot_only=first_boot_only,
        credential_files=await asyncio.to_thread(credential_files, sup),
    )


def credential_files(sup: Supervisor) -> list[tuple[str, bytes]]:
    """The OAuth credentials' files, with this sandbox's sentinels, for the services the
    host holds a sign-in for (without one, a file would only promise the agent a login
    that fails)."""
    from sandkit.net.oauth import credential_file
    from sandkit.sandbox.kitapply import HOME

    out = []
    for binding in sup.proxy.s.oauth if sup.proxy is not None else ():
        tokens = binding.tokens()
        if tokens is None:
            continue
        made = credential_file(binding.spec, binding.sentinels, tokens.expires_at, HOME)
        if made is not None:
            out.append(made)
    return out


async def make_unique(sup: Supervisor) -> None:
    """A restored VM was booted before anyone knew its name: give it this sandbox's
    hostname, a fresh machine-id, the host's clock, host entropy mixed into its RNG
    (then reseeded), and the workspace bound at its path."""
    assert sup.machine is not None and sup.machine.channel is not None
    c = sup.config
    try:
        await sup.machine.channel.adopt(
            hostname=c.name,
            machine_id=secrets.token_hex(16),
            time=time.time(),
            seed=secrets.token_hex(64),
            workspace=c.workspace,
        )
    except Exception as exc:
        raise SandkitError(f"cannot make the restored VM this sandbox's: {exc}") from None
