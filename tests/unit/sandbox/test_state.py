"""The sandbox state machine: its moves, the guard for what needs a state, and what
state.json values read as."""

from __future__ import annotations

import itertools

import pytest

from sandkit.sandbox.state import (
    LIVE,
    TRANSITIONS,
    SandboxState,
    StateError,
    SyncStatus,
    allowed,
    check_transition,
    require,
)
from sandkit.sandbox.store import State

S = SandboxState


def test_every_state_has_its_moves_and_the_life_of_a_sandbox_is_allowed() -> None:
    assert set(TRANSITIONS) == set(SandboxState)
    cold = [S.CREATED, S.BOOTING, S.RUNNING, S.STOPPING, S.STOPPED, S.BOOTING, S.CRASHED]
    warm = [S.BOOTING, S.POOLED, S.ADOPTING, S.POOLED, S.ADOPTING, S.RUNNING, S.CRASHED]
    for life in (cold, warm):
        for old, new in itertools.pairwise(life):
            check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.CREATED, S.RUNNING),
        (S.RUNNING, S.POOLED),
        (S.RUNNING, S.ADOPTING),
        (S.STOPPED, S.RUNNING),
        (S.STOPPING, S.RUNNING),
        (S.CRASHED, S.STOPPED),
        (S.POOLED, S.RUNNING),  # only through adopting
    ],
)
def test_moves_the_machine_does_not_allow_raise(old: SandboxState, new: SandboxState) -> None:
    assert not allowed(old, new)
    with pytest.raises(StateError, match=f"from {old} to {new}") as caught:
        check_transition(old, new)
    assert caught.value.current is old


def test_only_a_supervisors_states_are_live() -> None:
    assert {s for s in SandboxState if s.live} == LIVE
    assert not (S.CREATED.live or S.STOPPED.live or S.CRASHED.live)


class Holder:
    def __init__(self, state: SandboxState) -> None:
        self.runstate = state

    @require(S.RUNNING)
    async def work(self, value: int) -> int:
        return value * 2


async def test_require_runs_the_method_in_its_state_only() -> None:
    assert await Holder(S.RUNNING).work(21) == 42
    for state in set(SandboxState) - {S.RUNNING}:
        with pytest.raises(StateError, match=f"the sandbox is {state}, not running"):
            await Holder(state).work(1)


def test_state_json_values_read_as_states() -> None:
    assert State(state="pooled").state is S.POOLED  # type: ignore[arg-type]  # as from JSON
    assert S.parse("hibernating") is S.CRASHED  # a newer sandkit's state: not ours to run
    loaded = State.from_json({"state": "running", "from_the_future": 1})
    assert loaded.state is S.RUNNING


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("in sync", SyncStatus.IN_SYNC),
        ("in sync, 2 link(s) refused", SyncStatus.IN_SYNC),
        ("syncing", SyncStatus.SYNCING),
        ("paused", SyncStatus.PAUSED),
        ("conflicts", SyncStatus.CONFLICTS),
    ],
)
def test_the_sync_engines_text_has_a_kind(text: str, status: SyncStatus) -> None:
    assert SyncStatus.of(text) is status
