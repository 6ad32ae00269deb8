"""What `sandkit login` runs and waits for, pure: the agent's login command, the hosts its
login must reach (each allowed by the kits' rules), and whether the proxy has stored a
sign-in since the login started. The terminal and the sandbox are in cli/login.py."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.errors import SandkitError

if TYPE_CHECKING:
    from sandkit.kits.model import OAuthSpec, ResolvedSandbox
    from sandkit.net.policy import Policy
    from sandkit.net.tokens import TokenStore


class LoginError(SandkitError):
    pass


@dataclass(frozen=True)
class AgentLogin:
    """How an agent signs in without a browser of its own (sbx kits have no such field)."""

    command: tuple[str, ...]
    hosts: tuple[str, ...]  # what the login reaches from the guest
    token_host: str  # where it exchanges its code: must be the kit's tokenEndpoint


# Claude Code 2.1.81+ exchanges its code at platform.claude.com (it was console.anthropic.com)
# and reads the profile from api.anthropic.com; `claude auth login` prints the URL and reads
# the code pasted back. Codex's `codex login` listens on guest port 1455 for the browser's
# callback (published here while it runs) and exchanges the code at auth.openai.com.
LOGINS: dict[str, AgentLogin] = {
    "claude": AgentLogin(
        ("claude", "auth", "login", "--claudeai"),
        ("platform.claude.com", "api.anthropic.com"),
        "platform.claude.com",
    ),
    "codex": AgentLogin(("codex", "login"), ("auth.openai.com",), "auth.openai.com"),
}


@dataclass(frozen=True)
class Plan:
    kit: str  # the agent kit's name, as the user knows it
    oauth: tuple[tuple[str, OAuthSpec], ...]  # (service, spec) to sign in to
    command: tuple[str, ...]


def plan(sandbox: ResolvedSandbox, policy: Policy, command: str | None) -> Plan:
    """What to run and what to wait for; LoginError (naming the fix) when the kits cannot
    sign in through the proxy: no OAuth credential, no login command, a host not allowed,
    or a login whose token answer the proxy would not see."""
    from sandkit.net.actions import Action

    kit = sandbox.agent_name
    oauth = tuple((c.service, c.oauth) for c in sandbox.credentials if c.oauth is not None)
    if not oauth:
        raise LoginError(
            f"the {kit} kit declares no OAuth credential (`oauth:`), so there is nothing to "
            "sign in to; for an API key use `sandkit secret set SERVICE`"
        )
    passthrough = [s for s, spec in oauth if spec.passthrough]
    if passthrough:
        raise LoginError(
            f"credential(s) {', '.join(passthrough)} use oauth passthrough: a sign-in would "
            "put the real tokens in the sandbox, not on this machine"
        )
    known = LOGINS.get(kit)
    if command is not None:
        argv = tuple(shlex.split(command))
        if not argv:
            raise LoginError("--command is empty")
    elif known is not None:
        argv = known.command
    else:
        raise LoginError(
            f"sandkit does not know how the {kit} kit's agent signs in (it knows "
            f"{', '.join(sorted(LOGINS))}); give the agent's login command with --command"
        )
    needed = {spec.token_host: "the token endpoint" for _, spec in oauth}
    if known is not None and command is None:
        token_hosts = {spec.token_host.lower() for _, spec in oauth}
        if known.token_host not in token_hosts:
            raise LoginError(
                f"{' '.join(known.command)} exchanges its code at {known.token_host}, but the "
                f"{kit} kit's oauth tokenEndpoint is {', '.join(sorted(token_hosts))}: the "
                f"proxy would not see the answer and the real tokens would reach the sandbox; "
                f"the kit's tokenEndpoint must be {known.token_host}"
            )
        for host in known.hosts:
            needed.setdefault(host, "a host the login uses")
    blocked = [
        f"{host} ({why})"
        for host, why in needed.items()
        if policy.decide(host, 443).action is not Action.ALLOW
    ]
    if blocked:
        raise LoginError(
            f"the {kit} kit's network rules do not allow {', '.join(blocked)}; the login "
            "cannot work without it (add it to permissions.network.allow of a kit, e.g. a "
            "--kit mixin)"
        )
    return Plan(kit, oauth, argv)


def snapshot(tokens: TokenStore, services: Sequence[str], sandbox: str) -> dict[str, object]:
    """What the store holds for these services now (to tell a new sign-in from an old one)."""
    return {s: (t.to_json() if (t := tokens.get(s, sandbox)) else None) for s in services}


def signed_in(tokens: TokenStore, before: dict[str, object], sandbox: str) -> list[str]:
    """Services whose tokens the proxy stored (or replaced) since ``before``."""
    now = snapshot(tokens, list(before), sandbox)
    return [s for s, entry in now.items() if entry is not None and entry != before[s]]


def outcome(
    plan: Plan, done: Sequence[str], status: int, blocked: Sequence[str] = ()
) -> tuple[int, str]:
    """(exit status of `sandkit login`, what to say); ``blocked``: what the proxy refused
    the sandbox meanwhile (the usual reason a login ends without tokens)."""
    if done:
        lines = [
            f"signed in to {service}; the tokens stay on this machine; sandboxes with the "
            f"{plan.kit} kit start signed in"
            for service in done
        ]
        return 0, "\n".join(lines)
    services = ", ".join(s for s, _ in plan.oauth)
    endpoints = ", ".join(f"https://{spec.token_host}{spec.token_path}" for _, spec in plan.oauth)
    why = f"; the proxy blocked {', '.join(blocked)}" if blocked else ""
    return 1, (
        f"sandkit login: not signed in to {services}: `{shlex.join(plan.command)}` ended "
        f"(exit status {status}) and the proxy stored no tokens from {endpoints}{why}"
    )


def blocked_since(log: Path, since: str) -> list[str]:
    """Hosts the proxy refused since ``since`` (ISO time, as the decision log writes it)."""
    from sandkit.net.decisions import read_log

    try:
        records = read_log(log)
    except OSError:  # no request was made
        return []
    recent = [d for d in records if d.action == "blocked" and d.time >= since]
    return list(dict.fromkeys(f"{d.host}:{d.port} ({d.reason})" for d in recent))
