"""What a policy can say (light to import: the CLI's options and the approval prompt use
these without loading the kit models that the policy itself needs)."""

from __future__ import annotations

import enum


class DefaultPolicy(enum.StrEnum):
    ALLOW_ALL = "allow-all"
    BALANCED = "balanced"
    DENY_ALL = "deny-all"


class Action(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"
