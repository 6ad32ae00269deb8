"""The list of sandboxes reaches the editor without being asked for: the real server,
with a store of its own, sends sandkit/sandboxes once initialized and again whenever a
sandbox is made, changes state, is damaged or goes; always the rows sandkit.list answers,
never a warm-pool member, and nothing while nothing changes. No VM: the sandboxes are
written to the store as the supervisor would leave them."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from sandkit.lsp import protocol
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, Sandbox, State, Store
from tests.cli.test_kit_cli import SANDKIT
from tests.lsp.conftest import start


def plain(value: Any) -> Any:
    """pygls hands custom notifications over as namedtuples: back to JSON's shapes."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass
class Editor:
    client: LanguageClient
    store: Store
    pushed: list[list[dict[str, Any]]] = field(default_factory=list)

    async def next_push(self, after: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The first list sent after the ``after``-th one."""
        async with asyncio.timeout(timeout):
            while len(self.pushed) <= after:
                await asyncio.sleep(0.02)
        return self.pushed[after]

    async def listed(self) -> Any:
        return await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(protocol.LIST, [{}])
        )

    def make(self, name: str, state: str, workspace: str | None = None) -> Sandbox:
        config = Config(name=name, agent="shell", kits=["./kit"], workspace=workspace)
        sandbox = self.store.new(config)
        sandbox.save_config(config)
        sandbox.save_state(State(state=SandboxState(state)))
        return sandbox


@pytest_asyncio.fixture
async def editor(tmp_path: Path) -> AsyncIterator[Editor]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    config = ClientServerConfig(server_command=[SANDKIT, "lsp"], server_env=env)
    client = await config.start()
    assert isinstance(client, LanguageClient)
    editor = Editor(client, Store(tmp_path / "state" / "sandkit" / "sandboxes"))

    @client.feature(protocol.SANDBOXES)  # type: ignore[untyped-decorator]
    def sandboxes(ls: LanguageClient, params: Any) -> None:
        editor.pushed.append(plain(params)["sandboxes"])

    await start(client)
    yield editor
    await client.shutdown_session()


async def test_the_list_is_sent_when_the_store_changes(editor: Editor) -> None:
    assert await editor.next_push(0) == []  # at once, even when there is nothing

    alpha = editor.make("alpha", "stopped", "/ws/alpha")
    row = {
        "name": "alpha",
        "state": "stopped",
        "agent": "shell",
        "kits": ["./kit"],
        "workspace": "/ws/alpha",
        "sync": None,
        "error": None,
        "sessions": [],  # a stopped sandbox has none; running ones say (live)
        "ports": [],
    }
    assert await editor.next_push(1) == [row]
    assert await editor.listed() == [row]  # the same rows as the command's

    editor.make("pool-2c1024m-1", "pooled")  # the warm pool is not the user's to see
    state = alpha.state()
    state.state, state.error = SandboxState.CRASHED, "the guest kernel panicked"
    alpha.save_state(state)
    crashed = {**row, "state": "crashed", "error": "the guest kernel panicked"}
    assert await editor.next_push(2) == [crashed]

    await asyncio.sleep(2.5)  # two scans or more, nothing changed: nothing sent
    assert len(editor.pushed) == 3

    broken = editor.make("broken", "stopped")
    (broken.dir / "config.json").write_text("{not json")
    damaged = await editor.next_push(3)
    assert damaged[1]["name"] == "broken" and damaged[1]["state"] == "damaged"
    assert "`sandkit rm -f broken` removes it" in damaged[1]["error"]
    assert damaged[0] == crashed  # one damaged sandbox does not hide the others
    assert await editor.listed() == damaged

    shutil.rmtree(broken.dir)  # removed behind the server's back (say, by the CLI)
    assert await editor.next_push(4) == [crashed]


async def test_a_sandbox_removed_from_the_editor_is_gone_from_the_list_at_once(
    editor: Editor,
) -> None:
    editor.make("beta", "stopped")
    while not (editor.pushed and editor.pushed[-1]):
        await editor.next_push(len(editor.pushed))
    seen = len(editor.pushed)
    await editor.client.workspace_execute_command_async(
        types.ExecuteCommandParams(protocol.REMOVE, [{"name": "beta"}])
    )
    # Sent before the command's answer, not at the next scan.
    assert len(editor.pushed) == seen + 1 and editor.pushed[-1] == []
