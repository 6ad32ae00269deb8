"""One request's verdict: the policy's, a person's when the policy says ask, and the
checked address to connect to (DNS first when a rule names addresses; the SSRF guard)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sandkit.net.actions import Action
from sandkit.net.approvals import ABANDONED, Approval
from sandkit.net.decisions import Decision
from sandkit.net.guard import IPAddress, blocked_body, is_internal
from sandkit.net.policy import Reason, Verdict
from sandkit.net.proxy.settings import CONNECT_TIMEOUT, ProxySettings
from sandkit.tasks import spawn

if TYPE_CHECKING:
    from sandkit.net.proxy.server import EgressProxy


class Blocked(Exception):
    """A refusal: ``code`` goes to X-Sandkit-Blocked and the log, ``body`` to the reader."""

    def __init__(self, code: str, body: str, verdict: Verdict | None = None) -> None:
        super().__init__(code)
        self.code, self.body, self.verdict = code, body, verdict


GONE_POLL = 0.2  # seconds between looks at whether the asking client is still there


async def _ask(
    s: ProxySettings, host: str, port: int, client: asyncio.StreamReader | None
) -> Approval | None:
    """A person's answer, or None: no answer within ask_timeout, or the client that asked
    went away (then the question is withdrawn at once, not at the time-out)."""
    ask = s.ask
    assert ask is not None

    async def asked() -> Approval | None:
        return await ask(host, port)

    asking = spawn(asked(), f"ask-{host}")
    try:
        async with asyncio.timeout(s.ask_timeout):
            while True:
                done, _ = await asyncio.wait({asking}, timeout=GONE_POLL)
                if done:
                    return asking.result()
                if client is not None and client.at_eof():
                    asking.cancel(ABANDONED)
                    return None
    except TimeoutError:
        return None
    finally:
        asking.cancel()


async def _verdict(
    proxy: EgressProxy,
    host: str,
    port: int,
    method: str | None,
    path: str | None,
    address: IPAddress | None,
    client: asyncio.StreamReader | None = None,
) -> Verdict:
    s = proxy.s
    verdict = s.policy.decide(
        host,
        port,
        phase=s.phase,
        method=method,
        path=path,
        can_ask=s.ask is not None,
        address=address,
    )
    if verdict.action is not Action.ASK or s.ask is None:
        return verdict
    answer = await _ask(s, host, port, client)
    if answer is None:
        return Verdict(Action.DENY, Reason.DEFAULT_DENY)
    if answer.remember:
        proxy.approve(host, answer.action)
    reason = Reason.APPROVED if answer.action is Action.ALLOW else Reason.REFUSED
    return Verdict(answer.action, reason)


async def decide(
    proxy: EgressProxy,
    host: str,
    port: int,
    method: str | None = None,
    path: str | None = None,
    address: IPAddress | None = None,
    client: asyncio.StreamReader | None = None,
) -> tuple[Verdict, IPAddress | None]:
    """The verdict, and the address it was given (None: not resolved yet). When a
    rule names addresses, the name is resolved first: ``2130706433`` or a name that
    points at a denied address must meet the rule for that address."""
    s = proxy.s
    if address is None and s.policy.needs_address:
        first = s.policy.decide(host, port, phase=s.phase, method=method, path=path, can_ask=False)
        if first.reason is not Reason.DENY_RULE:  # a name denied outright needs no DNS
            address = await resolve(s, host, port, first)
    return await _verdict(proxy, host, port, method, path, address, client), address


def blocked(s: ProxySettings, host: str, port: int, verdict: Verdict) -> Blocked:
    return Blocked(
        str(verdict.reason), blocked_body(host, port, verdict, s.policy.default), verdict
    )


async def resolve(s: ProxySettings, host: str, port: int, verdict: Verdict | None) -> IPAddress:
    try:
        addresses = await asyncio.wait_for(s.resolver.resolve(host, port), CONNECT_TIMEOUT)
    except (OSError, TimeoutError, UnicodeError):
        addresses = None
    if not addresses:
        why = "cannot resolve" if addresses is None else "found no address for"
        body = (
            f"sandkit proxy: {why} {host}.\n"
            "Nothing was sent. Check the host name; a name that only resolves inside "
            "another network cannot be reached from this sandbox.\n"
        )
        raise Blocked("dns", body, verdict)
    return addresses[0]


async def address(
    s: ProxySettings, host: str, port: int, verdict: Verdict, known: IPAddress | None = None
) -> IPAddress:
    """The address to connect to (resolved unless ``known``), past the SSRF guard."""
    if known is None:
        known = await resolve(s, host, port, verdict)
    if is_internal(known) and not (verdict.explicit or s.resolver.pinned(host)):
        detail = f"{host} resolves to the internal address {known}"
        body = blocked_body(host, port, verdict, s.policy.default, detail)
        raise Blocked("private-address", body, verdict)
    return known


def note(decision: Decision, verdict: Verdict) -> None:
    """Name the deciding rule, and the kit it came from, in the decision."""
    if verdict.rule is not None:
        decision.rule = verdict.rule.pattern
        decision.origin = str(verdict.rule.origin)
