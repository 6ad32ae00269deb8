"""Open Workspace with a kit whose required credential has no value: the server refuses
before booting with MISSING_CREDENTIALS naming the services (the editor then asks for the
values), and ``sandkit.setSecret`` stores the value where that check finds it (the check
is run here in-process, not by opening again: that would boot a VM)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from sandkit.lsp import protocol
from sandkit.sandbox.request import MissingCredentials, SandboxRequest, build
from tests.cli.test_kit_cli import SANDKIT
from tests.conftest import NEEDS_KEY_KIT as KIT
from tests.lsp.conftest import start


@pytest_asyncio.fixture
async def editor(tmp_path: Path) -> AsyncIterator[LanguageClient]:
    env = {k: v for k, v in os.environ.items() if k != "BAR_KEY"}  # a host value would do
    env |= {
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    config = ClientServerConfig(server_command=[SANDKIT, "lsp"], server_env=env)
    client = await config.start()
    assert isinstance(client, LanguageClient)
    await start(client)
    yield client
    await client.shutdown_session()


async def run(client: LanguageClient, command: str, args: dict[str, Any]) -> Any:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command, [args]))


async def test_a_missing_required_secret_is_named_then_set_from_the_editor(
    editor: LanguageClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    (ws / "kit").mkdir(parents=True)
    (ws / "kit" / "spec.yaml").write_text(KIT)
    kits = [str(ws / "kit")]  # named by the editor: an untrusted folder's own kits could not
    opening = {"folder": ws.as_uri(), "name": "needs", "agent": "shell", "kits": kits}
    request = SandboxRequest(agent="shell", kits=kits, workspace=ws, name="needs")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the server's
    monkeypatch.delenv("BAR_KEY", raising=False)
    with pytest.raises(MissingCredentials):  # what the server will find, before asking it
        build(request)

    with pytest.raises(JsonRpcException) as refused:
        await run(editor, protocol.OPEN_WORKSPACE, opening)
    assert refused.value.code == protocol.MISSING_CREDENTIALS
    assert refused.value.data == {"services": ["bar"]}
    assert "sandkit secret set bar" in str(refused.value)
    assert not (tmp_path / "state" / "sandkit" / "sandboxes" / "needs").exists()  # nothing made

    with pytest.raises(JsonRpcException) as empty:
        await run(editor, protocol.SET_SECRET, {"service": "bar", "value": ""})
    assert empty.value.code == protocol.USER_ERROR  # a message for the person, nothing stored
    assert await run(editor, protocol.SET_SECRET, {"service": "bar", "value": "k-123"}) == {}
    stored = (tmp_path / "config" / "sandkit" / "secrets.json").read_text()
    assert '"bar": "k-123"' in stored
    assert (tmp_path / "config" / "sandkit" / "secrets.json").stat().st_mode & 0o077 == 0

    assert build(request).name == "needs"  # the check the server makes now passes
