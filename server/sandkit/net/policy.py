"""Network policy (pure): who may reach what.

Order, as in sbx: deny rules, then allow rules, then the sandbox's approvals, then the
default. Under ``balanced`` a small baseline of agent and code hosts is allowed; any other
unmatched host under ``balanced`` or ``deny-all`` is ``ask`` when someone can answer
(an editor, a terminal) and ``deny`` otherwise. Every verdict names the rule (and so the
kit file and line) that decided it.

Rules restricted to methods or paths (v3 network-policy@2) can only be checked on
requests the proxy can read; for a tunnel they make the verdict ``inspect``: the proxy
must terminate TLS and decide request by request.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sandkit.kits.hostrules import HostRule, parse_rule
from sandkit.kits.model import NetworkRule, Origin, Phase
from sandkit.net.actions import Action, DefaultPolicy


class Reason(enum.StrEnum):
    DENY_RULE = "deny-rule"
    ALLOW_RULE = "allow-rule"
    APPROVED = "approved"
    REFUSED = "refused-by-user"
    DEFAULT_ALLOW = "default-allow"
    BASELINE = "baseline"
    DEFAULT_DENY = "default-deny"


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

    @property
    def explicit(self) -> bool:
        """The deciding rule names this host or address itself (no wildcard)."""
        return self.rule is not None and parse_rule(self.rule.pattern).names_host_explicitly

    def describe(self) -> str:
        if self.rule is None:
            return str(self.reason)
        return f"{self.reason} '{self.rule.pattern}' from {self.rule.origin}"


@dataclass(frozen=True)
class _Compiled:
    rule: NetworkRule
    host: HostRule

    def applies(self, host: str, port: int, phase: Phase) -> bool:
        if self.rule.phase is not Phase.ANY and self.rule.phase is not phase:
            return False
        return self.host.matches(host, port)

    @property
    def restricted(self) -> bool:
        return bool(self.rule.methods or self.rule.paths)

    def request_matches(self, method: str, path: str) -> bool:
        methods = self.rule.methods
        if methods and "ANY" not in methods and method.upper() not in methods:
            return False
        return not self.rule.paths or any(fnmatch.fnmatchcase(path, p) for p in self.rule.paths)


def _compile(rules: Iterable[NetworkRule]) -> tuple[_Compiled, ...]:
    return tuple(_Compiled(r, parse_rule(r.pattern)) for r in rules)


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

    def with_approval(self, pattern: str, action: Action) -> Policy:
        parse_rule(pattern)  # refuse a malformed pattern before it is stored
        return Policy(
            self.allow, self.deny, self.default, self.baseline, {**self.approvals, pattern: action}
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
    ) -> Verdict:
        """The verdict for a connection (``method`` None) or for one request."""
        inspect = False
        for c in self._deny:
            if c.applies(host, port, phase):
                if not c.restricted:
                    return Verdict(Action.DENY, Reason.DENY_RULE, c.rule)
                if method is None:
                    inspect = True  # some requests to this host are denied: look at each
                elif c.request_matches(method, path or "/"):
                    return Verdict(Action.DENY, Reason.DENY_RULE, c.rule)
        for c in self._allow:
            if c.applies(host, port, phase):
                if not c.restricted:
                    return Verdict(Action.ALLOW, Reason.ALLOW_RULE, c.rule, inspect)
                if method is None:
                    return Verdict(Action.ALLOW, Reason.ALLOW_RULE, c.rule, True)
                if c.request_matches(method, path or "/"):
                    return Verdict(Action.ALLOW, Reason.ALLOW_RULE, c.rule)
        for c in self._approved:
            if c.applies(host, port, phase):
                action = self.approvals[c.rule.pattern]
                reason = Reason.APPROVED if action is Action.ALLOW else Reason.REFUSED
                return Verdict(action, reason, c.rule, inspect)
        if self.default is DefaultPolicy.ALLOW_ALL:
            return Verdict(Action.ALLOW, Reason.DEFAULT_ALLOW, None, inspect)
        for c in self._baseline:
            if c.applies(host, port, phase):
                return Verdict(Action.ALLOW, Reason.BASELINE, c.rule, inspect)
        if can_ask:
            return Verdict(Action.ASK, Reason.DEFAULT_DENY)
        return Verdict(Action.DENY, Reason.DEFAULT_DENY)
