"""Waiting for a sandbox to start ends when its folder is removed meanwhile (a `pool drain`
or `rm -f` during a background refill), instead of waiting out the boot time-out."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from sandkit.sandbox import lifecycle
from sandkit.sandbox.store import Config, SandboxError, State, Store
from sandkit.tasks import spawn


async def test_wait_ends_when_the_sandbox_is_removed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sandbox = store.new(Config(name="pool-2c512m-abc123", agent="shell"))
    sandbox.save_state(State(state="booting", supervisor_pid=os.getpid()))  # alive
    waiter = spawn(lifecycle._wait(sandbox, None), "wait")
    await asyncio.sleep(0.2)
    assert not waiter.done()  # still booting: it waits
    shutil.rmtree(sandbox.dir)
    with pytest.raises(SandboxError, match="was removed while it started"):
        await asyncio.wait_for(waiter, 5)
