"""The supervisor's hold on its egress proxy: started on the socket QEMU's forward names,
reconfigured when a pool member is adopted, closed once. The proxy owns its log and CA."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from sandkit.kits.model import Phase
from sandkit.net.actions import Action

if TYPE_CHECKING:
    from sandkit.kits.resolution import Resolution
    from sandkit.sandbox.supervisor.process import Supervisor


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
