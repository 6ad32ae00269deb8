"""A sandbox's life as a state machine (after qemu.qmp's ``Runstate`` and ``@require``):
the states state.json records, the moves the supervisor may make between them, and a
guard for what needs a state.

    created ──▶ booting ──▶ running ──▶ stopping ──▶ stopped ──▶ booting …
                   │  └───▶ pooled ──▶ adopting ──▶ running
                   └──────────────────▶ crashed (from any live state) ──▶ booting …

Only a supervisor moves its sandbox between live states; lifecycle records ``booting``
when it spawns one, and ``stopped``/``crashed`` for a supervisor that is gone."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from sandkit.errors import SandkitError


class SandboxState(StrEnum):
    CREATED = "created"  # made, never started
    BOOTING = "booting"  # its supervisor is starting QEMU, the proxy, the sync, the kits
    POOLED = "pooled"  # a paused warm-pool member, waiting to be adopted
    ADOPTING = "adopting"  # a pool member becoming a sandbox (renamed, resumed, kits applied)
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"  # failed to start, or its VM or supervisor died

    @classmethod
    def parse(cls, value: object) -> SandboxState:
        """A state.json value; one this version does not know reads as crashed."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.CRASHED

    @property
    def live(self) -> bool:
        """A supervisor owns the sandbox (if its pid is alive)."""
        return self in LIVE


LIVE = frozenset(
    {
        SandboxState.BOOTING,
        SandboxState.POOLED,
        SandboxState.ADOPTING,
        SandboxState.RUNNING,
        SandboxState.STOPPING,
    }
)
S = SandboxState
TRANSITIONS: dict[SandboxState, frozenset[SandboxState]] = {
    S.CREATED: frozenset({S.BOOTING}),
    S.BOOTING: frozenset({S.RUNNING, S.POOLED, S.STOPPING, S.CRASHED}),
    S.POOLED: frozenset({S.ADOPTING, S.STOPPING, S.CRASHED}),
    S.ADOPTING: frozenset({S.POOLED, S.RUNNING, S.STOPPING, S.CRASHED}),
    S.RUNNING: frozenset({S.STOPPING, S.CRASHED}),
    S.STOPPING: frozenset({S.STOPPED, S.CRASHED}),
    S.STOPPED: frozenset({S.BOOTING}),
    S.CRASHED: frozenset({S.BOOTING}),
}


class StateError(SandkitError):
    """A move the state machine does not allow, or a call that needs another state."""

    def __init__(self, message: str, current: SandboxState) -> None:
        super().__init__(message)
        self.current = current


def allowed(old: SandboxState, new: SandboxState) -> bool:
    return new == old or new in TRANSITIONS[old]


def check_transition(old: SandboxState, new: SandboxState) -> None:
    if not allowed(old, new):
        raise StateError(f"a sandbox cannot go from {old} to {new}", old)


class HasState(Protocol):
    @property
    def runstate(self) -> SandboxState: ...


H = TypeVar("H", bound=HasState)
P = ParamSpec("P")
R = TypeVar("R")


def require(
    *states: SandboxState,
) -> Callable[
    [Callable[Concatenate[H, P], Awaitable[R]]], Callable[Concatenate[H, P], Awaitable[R]]
]:
    """Decorate a coroutine function whose first argument has a ``runstate``: calling it in
    any other state raises StateError instead of running it."""
    wanted = frozenset(states)

    def decorate(
        func: Callable[Concatenate[H, P], Awaitable[R]],
    ) -> Callable[Concatenate[H, P], Awaitable[R]]:
        @functools.wraps(func)
        async def guarded(owner: H, /, *args: P.args, **kwargs: P.kwargs) -> R:
            current = owner.runstate
            if current not in wanted:
                names = " or ".join(sorted(wanted))
                raise StateError(f"the sandbox is {current}, not {names}", current)
            return await func(owner, *args, **kwargs)

        return guarded

    return decorate


class SyncStatus(StrEnum):
    """What the sync engine reports (sync/engine.py ``status``), as a kind: the engine's
    text may add detail ("in sync, 2 link(s) refused")."""

    IN_SYNC = "in sync"
    SYNCING = "syncing"
    PAUSED = "paused"  # changes wait for a person (sync-approve / sync-reject)
    CONFLICTS = "conflicts"

    @classmethod
    def of(cls, text: str) -> SyncStatus:
        for status in cls:
            if text == status or text.startswith(f"{status.value},"):
                return status
        return cls.SYNCING
