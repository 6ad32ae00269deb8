"""What a proxy serves with: the policy, the CA and injector, the decision log, how to
resolve and verify upstreams, and who may ask a person. The proxy owns the log and the CA
from the moment it is given them (``EgressProxy``)."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sandkit.kits.model import Phase
from sandkit.net.access import TokenAccess
from sandkit.net.approvals import Approval
from sandkit.net.decisions import DecisionLog
from sandkit.net.guard import Resolver
from sandkit.net.inject import Injector
from sandkit.net.policy import Policy
from sandkit.net.proxy.oauth import OAuthBinding
from sandkit.net.tls import CertificateAuthority

CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0
COPY_SIZE = 256 * 1024

Ask = Callable[[str, int], Awaitable[Approval | None]]


@dataclass
class ProxySettings:
    policy: Policy
    ca: CertificateAuthority
    injector: Injector = field(default_factory=Injector)
    log: DecisionLog = field(default_factory=DecisionLog)
    resolver: Resolver = field(default_factory=Resolver)
    upstream_tls: ssl.SSLContext = field(default_factory=ssl.create_default_context)
    sandbox: str = "-"
    phase: Phase = Phase.RUNTIME
    ask: Ask | None = None
    ask_timeout: float = 60.0
    access: TokenAccess | None = None  # every request to the proxy must carry its token
    oauth: tuple[OAuthBinding, ...] = ()  # OAuth credentials: sentinels, host token store

    def release(self, keep: ProxySettings | None = None) -> None:
        """Close the log and the CA, except what ``keep`` holds too."""
        if keep is None or self.log is not keep.log:
            self.log.close()
        if keep is None or self.ca is not keep.ca:
            self.ca.close()
