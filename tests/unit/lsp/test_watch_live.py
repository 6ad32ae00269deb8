"""The language server's watcher keeps each running sandbox's sessions and ports (`live`):
a look at the supervisor still on its way when the sandbox is forgotten must not put them
back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from sandkit.lsp.sandboxes.watch import Watcher
from sandkit.sandbox.protocol import PortsResult, SessionInfo

AGENT = SessionInfo(name="agent", argv=["bash"], user="agent", pty=True, started=0.0, running=True)


class Supervisor:
    """What `refresh` asks a supervisor, answering sessions only once let."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()

    async def ports(self) -> PortsResult:
        return PortsResult(ports=[], listening=[8000])

    async def sessions(self) -> list[SessionInfo]:
        await self.answer.wait()
        return [AGENT]


@pytest.fixture
def watcher(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Watcher:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # an empty store
    sent: list[Any] = []
    server = SimpleNamespace(protocol=SimpleNamespace(notify=lambda m, p: sent.append(p)))
    return Watcher(cast(Any, server))


def watched() -> Any:
    return SimpleNamespace(follow=None, decisions=SimpleNamespace(clear=lambda server: None))


async def test_a_refresh_that_ends_after_the_sandbox_is_forgotten_is_dropped(
    watcher: Watcher,
) -> None:
    watcher.watched["box"] = watched()
    supervisor = Supervisor()
    looking = asyncio.ensure_future(watcher.refresh("box", cast(Any, supervisor)))
    await asyncio.sleep(0)  # it has asked, and waits for the answer
    watcher.forget("box")  # the sandbox was removed meanwhile
    supervisor.answer.set()
    assert await looking == {8000}
    assert "box" not in watcher.live


async def test_a_refresh_of_a_sandbox_still_watched_is_kept(watcher: Watcher) -> None:
    watcher.watched["box"] = watched()
    supervisor = Supervisor()
    supervisor.answer.set()
    await watcher.refresh("box", cast(Any, supervisor))
    assert [s["name"] for s in watcher.live["box"].sessions] == ["agent"]
