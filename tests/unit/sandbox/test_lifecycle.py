"""Lifecycle cores: waiting for a start ends when the sandbox is removed meanwhile (a
`pool drain` or `rm -f` during a background refill) instead of waiting out the boot
time-out; a prepared member's profile is its agent, kits and kit args."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from sandkit.sandbox import lifecycle
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, SandboxError, State, Store, profile, profile_of
from sandkit.tasks import spawn


async def test_wait_ends_when_the_sandbox_is_removed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sandbox = store.new(Config(name="pool-2c512m-abc123", agent="shell"))
    sandbox.save_state(State(state=SandboxState.BOOTING, supervisor_pid=os.getpid()))  # alive
    waiter = spawn(lifecycle._wait(sandbox, None), "wait")
    await asyncio.sleep(0.2)
    assert not waiter.done()  # still booting: it waits
    shutil.rmtree(sandbox.dir)
    with pytest.raises(SandboxError, match="was removed while it started"):
        await asyncio.wait_for(waiter, 5)


def test_a_prepared_members_profile_is_agent_kits_and_args() -> None:
    a = Config(name="a", agent="claude", kits=["/k/x"], kit_args={"b": "2", "a": "1"})
    b = Config(name="b", agent="claude", kits=["/k/x"], kit_args={"a": "1", "b": "2"}, cpus=4)
    assert profile(a) == profile(b)  # names, shapes, arg order: no matter
    assert profile_of(
        {"agent": "claude", "kits": ["/k/x"], "kit_args": {"a": "1", "b": "2"}}
    ) == profile(a)
    for other in (
        Config(name="c", agent="codex", kits=["/k/x"], kit_args=a.kit_args),
        Config(name="c", agent="claude", kits=[], kit_args=a.kit_args),
        Config(name="c", agent="claude", kits=["/k/x"], kit_args={"a": "1"}),
        Config(
            name="c", agent="claude", kits=["/k/x"], kit_args=a.kit_args, default_policy="allow-all"
        ),
    ):
        assert profile(other) != profile(a)


def test_a_sandbox_that_needs_docker_adopts_only_a_member_prepared_for_its_kits(
    tmp_path: Path,
) -> None:
    """Plain members boot the base image: a sandbox with the docker kit never tries one
    (it would be refused), but a member prepared for its kits boots Docker's variant."""
    from sandkit.sandbox import pool

    store = Store(tmp_path)

    def member(name: str, kits: list[str]) -> str:
        config = Config(name=name, agent="shell", kits=kits, cpus=2, memory_mib=512)
        config.pool_shape, config.pool_prepared = "2c512m", bool(kits)
        store.new(config).save_config(config)
        return name

    plain, docker = member("pool-2c512m-aaaaaa", []), member("pool-2c512m-bbbbbb", ["docker"])
    wants = {
        (): [plain],  # the prepared member's kits differ: not this one
        ("docker",): [docker],
    }
    for kits, members in wants.items():
        config = Config(name="new", agent="shell", kits=list(kits), cpus=2, memory_mib=512)
        assert [m.name for m in pool._candidates(store, config)] == members, kits
