"""What the guest is given: its environment (the kits' variables, placeholders for the
secrets, the CA bundle for every TLS stack), the sandbox CA in its trust store, the kits
applied, and, for a restored VM, its own name, entropy and clock."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.errors import SandkitError
from sandkit.hostconfig import local_cas, registry_credentials, registry_hosts
from sandkit.logs import logger
from sandkit.net.actions import Action
from sandkit.net.secrets import SecretStore
from sandkit.sandbox.store import Config
from sandkit.sandbox.supervisor import egress
from sandkit.sandbox.supervisor.approvals import load_approvals
from sandkit.vm.guestinfo import AGENT_UID, AGENT_USER, GUEST_PROXY
from sandkit.vm.image import DOCKER

if TYPE_CHECKING:
    from sandkit.kits.resolution import Resolution
    from sandkit.net.inject import BoundCredential
    from sandkit.net.proxy import ProxySettings
    from sandkit.sandbox.supervisor.process import Supervisor

log = logger(__name__)
GUEST_CA = "/usr/local/share/ca-certificates/sandkit-proxy.crt"
# dockerd reads the system bundle for registries (Go's system pool): no certs.d needed.
GUEST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CA_BUNDLE_VARS = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
)
DOCKER_CONFIG = f"/home/{AGENT_USER}/.docker/config.json"
PROXY_URL = f"http://{GUEST_PROXY}"
GUEST_NO_PROXY = "localhost,127.0.0.1,::1"  # what guest/agent.py gives every process


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
    sup.ca_pem = settings.ca.cert_pem
    if c.upstream_ca:
        # Only its certificates: the file goes into the guest's trust store.
        from sandkit.net.cafile import read_certificates  # cryptography: only for one

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


async def trust_ca(sup: Supervisor, unless_trusted: bool = False) -> None:
    """Install the sandbox CA (and an upstream CA) in the guest's trust store: once per
    disk, recorded by a marker named after the certificates, so the bundle (large)
    never travels over the channel. On the docker variant, Docker's client gets the proxy.
    ``unless_trusted`` (an adoption): nothing when this supervisor installed the same
    certificates in this guest already (a member pools with the CA a sandbox gets)."""
    assert sup.machine is not None and sup.machine.channel is not None
    channel = sup.machine.channel
    pem = sup.ca_pem
    if not (unless_trusted and pem == sup.trusted_pem):
        marker = f"/var/lib/sandkit/ca-{hashlib.sha256(pem).hexdigest()[:16]}"
        try:
            await channel.write_file(GUEST_CA, pem)
            if await channel.read_file(marker) is None:
                await channel.write_file(GUEST_CA_BUNDLE, b"\n" + pem, append=True)
                await channel.write_file(marker, b"")
        except SandkitError as exc:
            raise SandkitError(f"cannot install the sandbox CA in the guest: {exc}") from None
        sup.trusted_pem = pem
    if sup.machine.image.variant == DOCKER:
        await docker_proxies(sup)


def docker_client_config(existing: bytes | None) -> bytes | None:
    """The agent's Docker client config with ``proxies.default`` set to the sandbox's
    proxy, which the docker CLI hands to every container and build as HTTP(S)_PROXY, so
    their traffic is policed like the guest's; the user's other keys are kept. None when
    it needs no change; ValueError when it is not a JSON object (the user's to fix: the
    docker CLI refuses it too)."""
    config = json.loads(existing) if existing is not None else {}
    if not isinstance(config, dict) or not isinstance(config.get("proxies", {}), dict):
        raise ValueError("not a JSON object with an object 'proxies'")
    proxies = config.setdefault("proxies", {})
    default = proxies.get("default")
    want = {
        **(default if isinstance(default, dict) else {}),
        "httpProxy": PROXY_URL,
        "httpsProxy": PROXY_URL,
        "noProxy": GUEST_NO_PROXY,
    }
    if default == want:
        return None
    proxies["default"] = want
    return json.dumps(config, indent="\t").encode() + b"\n"


async def docker_proxies(sup: Supervisor) -> None:
    """Merge the proxy into the agent's ~/.docker/config.json (docker variant only)."""
    assert sup.machine is not None and sup.machine.channel is not None
    channel = sup.machine.channel
    try:
        existing = await channel.read_file(DOCKER_CONFIG)
        try:
            data = docker_client_config(existing)
        except ValueError as exc:
            log.warning("%s left as it is (%s): containers get no proxy", DOCKER_CONFIG, exc)
            return
        if data is None:
            return
        if existing is None:  # made by the agent user: docker keeps more of its files there
            await channel.run(
                ["mkdir", "-p", "-m", "0700", DOCKER_CONFIG.rsplit("/", 1)[0]], user=AGENT_USER
            )
        await channel.write_file(DOCKER_CONFIG, data, 0o600, str(AGENT_UID))
    except SandkitError as exc:
        raise SandkitError(f"cannot give Docker the sandbox proxy: {exc}") from None


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


REHEARSAL = "/run/sandkit/rehearsal"  # a member's rehearsed workspace, unbound at once


async def make_unique(sup: Supervisor) -> dict[str, float]:
    """A restored VM was booted before anyone knew its name: give it this sandbox's
    hostname, a fresh machine-id, the host's clock, host entropy mixed into its RNG
    (then reseeded), and the workspace bound at its path. Each step's time in the guest."""
    try:
        return await _adopt_in_guest(sup, sup.config.name, sup.config.workspace)
    except Exception as exc:
        raise SandkitError(f"cannot make the restored VM this sandbox's: {exc}") from None


async def rehearse_adoption(sup: Supervisor) -> None:
    """make_unique once in a member, with its own name and a workspace unbound at once, so
    that TCG has translated the guest's side of it (the bind mount's kernel paths, ctypes)
    before the pause: an adoption then takes ~20 ms less."""
    await _adopt_in_guest(sup, sup.sandbox.name, REHEARSAL, rehearse=True)


async def _adopt_in_guest(
    sup: Supervisor, name: str, workspace: str | None, rehearse: bool = False
) -> dict[str, float]:
    assert sup.machine is not None and sup.machine.channel is not None
    return await sup.machine.channel.adopt(
        hostname=name,
        machine_id=secrets.token_hex(16),
        time=time.time(),
        seed=secrets.token_hex(64),
        workspace=workspace,
        rehearse=rehearse,
    )
