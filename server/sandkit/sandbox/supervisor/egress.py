"""The supervisor's hold on its egress proxy: started on the socket QEMU's forward names,
reconfigured when a pool member is adopted, closed once. The proxy owns its log and CA."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sandkit.kits.model import Phase
from sandkit.net.actions import Action

if TYPE_CHECKING:
    from sandkit.kits.resolution import Resolution
    from sandkit.sandbox.supervisor.process import Supervisor


# The host variables a client handed over (credentials-changed), per supervisor, in memory
# only: a pool member adopted later gets its adopter's, not its filler's.
_ENVIRON: weakref.WeakKeyDictionary[Supervisor, dict[str, str]] = weakref.WeakKeyDictionary()


def set_host_environ(sup: Supervisor, environ: Mapping[str, str]) -> None:
    _ENVIRON[sup] = dict(environ)


def host_environ(sup: Supervisor) -> Mapping[str, str] | None:
    """What a client handed over, else None (this process's environment)."""
    return _ENVIRON.get(sup)


async def refresh_credentials(sup: Supervisor) -> list[str]:
    """Read the kits' credentials again (store, allowed host variables and files) into the
    running proxy, with the placeholders the guest already has. The services with a value."""
    from sandkit.net.inject import BoundCredential, Injector
    from sandkit.net.secrets import SecretStore, credential_value

    proxy, resolution = sup.proxy, sup.resolution
    if proxy is None or resolution is None:
        return []  # not serving yet: the proxy reads them when it starts
    store, environ = SecretStore(sandbox=sup.config.name), host_environ(sup)
    kits = resolution.sandbox.credentials

    def bind() -> list[BoundCredential]:
        return [
            BoundCredential(
                b.credential, credential_value(b.credential, store, environ), b.placeholder
            )
            if any(b.credential is c for c in kits)
            else b  # the host's registry logins: not the store's
            for b in proxy.s.injector.bound
        ]

    bound = await asyncio.to_thread(bind)
    proxy.reconfigure(dataclasses.replace(proxy.s, injector=Injector(bound)))
    return sorted({b.service for b in bound if b.value})


async def start_proxy(
    sup: Supervisor, listener: socket.socket, resolution: Resolution | None = None
) -> None:
    from sandkit.net.proxy import EgressProxy

    proxy = EgressProxy(await sup.proxy_settings(resolution))
    try:
        await proxy.start(sock=listener)
    except BaseException:
        await proxy.aclose()
        raise
    sup.proxy = proxy


async def reconfigure(sup: Supervisor, resolution: Resolution) -> None:
    """An adopted member's proxy takes the new sandbox's kits, credentials and CA."""
    assert sup.proxy is not None
    sup.proxy.reconfigure(await sup.proxy_settings(resolution))


def set_phase(sup: Supervisor, phase: Phase) -> None:
    """v3 kits' install-phase rules hold only while install commands run."""
    if sup.proxy is not None:
        sup.proxy.set_phase(phase)


def remember(sup: Supervisor, host: str, action: Action) -> None:
    """An approval for the rest of this sandbox's life, in the running proxy's policy."""
    if sup.proxy is not None:
        sup.proxy.approve(host, action)


async def close_proxy(sup: Supervisor) -> None:
    proxy, sup.proxy = sup.proxy, None
    if proxy is None:
        return
    await proxy.aclose()
    sup.proxy_socket.unlink(missing_ok=True)
