"""Network policy (pure): who may reach what.

Order, as in sbx: deny rules, then allow rules, then the sandbox's approvals, then the
default. Under ``balanced`` a small baseline of agent and code hosts is allowed; any other
unmatched host under ``balanced`` or ``deny-all`` is ``ask`` when someone can answer
(an editor, a terminal) and ``deny`` otherwise. Every verdict names the rule (and so the
kit file and line) that decided it.

Rules restricted to methods or paths (v3 network-policy@2) can only be checked on
requests the proxy can read; for a tunnel they make the verdict ``inspect``: the proxy
must terminate TLS and decide request by request. Paths are judged after normalisation
(``sandkit.net.target``); a path that such a rule must judge but that cannot be
normalised is refused.

Address rules (``10.0.0.0/8``, ``93.184.216.34``) apply to the literal host and to the
address the name resolved to, so ``2130706433`` or a name pointing at a denied address
is caught; the proxy passes that ``address``.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sandkit.kits.hostrules import HostRule, RuleKind, parse_rule
from sandkit.kits.model import NetworkRule, Origin, Phase
from sandkit.net.actions import Action, DefaultPolicy
from sandkit.net.approvals import exact_host
from sandkit.net.target import BadTarget, PathPattern, Target, normalise

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Reason(enum.StrEnum):
    DENY_RULE = "deny-rule"
    ALLOW_RULE = "allow-rule"
    APPROVED = "approved"
    REFUSED = "refused-by-user"
    DEFAULT_ALLOW = "default-allow"
    BASELINE = "baseline"
    DEFAULT_DENY = "default-deny"
    BAD_TARGET = "bad-target"


BUILTIN = Origin(kit="sandkit", file="(built-in balanced baseline)", line=0, column=0)
APPROVAL = Origin(kit="approval", file="(approved by a person)", line=0, column=0)

# Agent APIs and code hosts every coding agent needs (sbx's Balanced preset has the same
# idea). Package registries are added at run time from the host's configuration.
BALANCED_BASELINE = (
    "api.anthropic.com",
    "api.openai.com",
    "generativelanguage.googleapis.com",
    "github.com",
    "api.github.com",
    "codeload.github.com",
    "objects.githubusercontent.com",
    "raw.githubusercontent.com",
    "gitlab.com",
)


def baseline_rules(extra_hosts: Iterable[str] = ()) -> tuple[NetworkRule, ...]:
    return tuple(NetworkRule(pattern=h, origin=BUILTIN) for h in (*BALANCED_BASELINE, *extra_hosts))


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: Reason
    rule: NetworkRule | None = None
    inspect: bool = False  # decide again per request (method/path rules)
    detail: str | None = None  # why a request target was refused (BAD_TARGET)

    @property
    def explicit(self) -> bool:
        """The deciding rule names this host or address itself (no wildcard), and a person
        wrote it in a kit: an approval (its host comes from the agent's request) never lets
        a name reach an internal address."""
        if self.rule is None or self.rule.origin == APPROVAL:
            return False
        return parse_rule(self.rule.pattern).names_host_explicitly

    def describe(self) -> str:
        if self.rule is None:
            return str(self.reason)
        return f"{self.reason} '{self.rule.pattern}' from {self.rule.origin}"


def _spellings(address: IPAddress) -> tuple[IPAddress, ...]:
    """``::ffff:127.0.0.1`` is 127.0.0.1 to the kernel, so to the rules too, whichever
    form the rule was written in."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        return (address,) if mapped is None else (address, mapped)
    return (address, ipaddress.IPv6Address(f"::ffff:{address}"))


@dataclass(frozen=True)
class _Compiled:
    rule: NetworkRule
    host: HostRule
    paths: tuple[PathPattern, ...] = field(default=())

    def applies(self, host: str, port: int, phase: Phase, address: IPAddress | None = None) -> bool:
        if self.rule.phase is not Phase.ANY and self.rule.phase is not phase:
            return False
        if self.host.matches(host, port):
            return True
        return address is not None and self._contains(address, port)

    def _contains(self, address: IPAddress, port: int) -> bool:
        network, ports = self.host.network, self.host.ports
        if network is None or (ports is not None and not ports[0] <= port <= ports[1]):
            return False
        return any(a.version == network.version and a in network for a in _spellings(address))

    @property
    def restricted(self) -> bool:
        return bool(self.rule.methods or self.rule.paths)

    def request_matches(self, method: str, target: Target, *, deny: bool) -> bool:
        """A deny rule matches if any reading of the path matches, an allow rule only
        if every reading does: an ambiguous path is never let through by either."""
        methods = self.rule.methods
        if methods and "ANY" not in methods and method.upper() not in methods:
            return False
        if not self.paths:
            return True
        test = any if deny else all
        return test(any(p.matches(path) for p in self.paths) for path in target.readings)


def _compile(rules: Iterable[NetworkRule]) -> tuple[_Compiled, ...]:
    return tuple(
        _Compiled(r, parse_rule(r.pattern), tuple(PathPattern(p) for p in r.paths)) for r in rules
    )


class _LazyTarget:
    """Normalise the request target once, and only if a method/path rule asks for it."""

    def __init__(self, path: str | None) -> None:
        self.raw = path or "/"
        self._done: Target | BadTarget | None = None

    def get(self) -> Target | BadTarget:
        if self._done is None:
            try:
                self._done = normalise(self.raw)
            except BadTarget as exc:
                self._done = exc
        return self._done


class Policy:
    """Immutable: an approval makes a new policy (``with_approval``)."""

    def __init__(
        self,
        allow: Sequence[NetworkRule] = (),
        deny: Sequence[NetworkRule] = (),
        default: DefaultPolicy = DefaultPolicy.BALANCED,
        baseline: Sequence[NetworkRule] | None = None,
        approvals: Mapping[str, Action] | None = None,
    ) -> None:
        if baseline is None:
            baseline = baseline_rules() if default is DefaultPolicy.BALANCED else ()
        self.allow, self.deny, self.default = tuple(allow), tuple(deny), default
        self.baseline = tuple(baseline)
        self.approvals: dict[str, Action] = dict(approvals or {})
        self._allow, self._deny = _compile(self.allow), _compile(self.deny)
        self._baseline = _compile(self.baseline)
        self._approved = _compile(NetworkRule(pattern=p, origin=APPROVAL) for p in self.approvals)
        # Some rule names an address or network: the proxy must resolve the name before
        # deciding, and pass the address it will connect to.
        self.needs_address = any(
            c.host.kind is RuleKind.NETWORK
            for c in (*self._deny, *self._allow, *self._approved, *self._baseline)
        )

    def with_approval(self, pattern: str, action: Action) -> Policy:
        host = exact_host(pattern, port=True)  # one host: never a wildcard or a range
        return Policy(
            self.allow, self.deny, self.default, self.baseline, {**self.approvals, host: action}
        )

    def decide(
        self,
        host: str,
        port: int,
        *,
        phase: Phase = Phase.RUNTIME,
        method: str | None = None,
        path: str | None = None,
        can_ask: bool = False,
        address: IPAddress | None = None,
    ) -> Verdict:
        """The verdict for a connection (``method`` None) or for one request (``path``:
        its target as sent). ``address``: where the name resolved to, if known."""
        inspect = False
        target = _LazyTarget(path)
        for c in self._deny:
            if c.applies(host, port, phase, address):
                if not c.restricted:
                    return Verdict(Action.DENY, Reason.DENY_RULE, c.rule)
                if method is None:
                    inspect = True  # some requests to this host are denied: look at each
                    continue
                judged = target.get()
                if isinstance(judged, BadTarget):
                    return Verdict(Action.DENY, Reason.BAD_TARGET, c.rule, detail=str(judged))
                if c.request_matches(method, judged, deny=True):
                    return Verdict(Action.DENY, Reason.DENY_RULE, c.rule)
        for c in self._allow:
            if c.applies(host, port, phase, address):
                if not c.restricted:
                    return Verdict(Action.ALLOW, Reason.ALLOW_RULE, c.rule, inspect)
                if method is None:
                    return Verdict(Action.ALLOW, Reason.ALLOW_RULE, c.rule, True)
                judged = target.get()
                if isinstance(judged, BadTarget):
                    return Verdict(Action.DENY, Reason.BAD_TARGET, c.rule, detail=str(judged))
                if c.request_matches(method, judged, deny=False):
                    return Verdict(Action.ALLOW, Reason.ALLOW_RULE, c.rule)
        for c in self._approved:
            if c.applies(host, port, phase, address):
                action = self.approvals[c.rule.pattern]
                reason = Reason.APPROVED if action is Action.ALLOW else Reason.REFUSED
                return Verdict(action, reason, c.rule, inspect)
        if self.default is DefaultPolicy.ALLOW_ALL:
            return Verdict(Action.ALLOW, Reason.DEFAULT_ALLOW, None, inspect)
        for c in self._baseline:
            if c.applies(host, port, phase, address):
                return Verdict(Action.ALLOW, Reason.BASELINE, c.rule, inspect)
        if can_ask:
            return Verdict(Action.ASK, Reason.DEFAULT_DENY)
        return Verdict(Action.DENY, Reason.DEFAULT_DENY)
