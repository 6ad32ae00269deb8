"""The agent kit's session verbs from the editor: the real `sandkit lsp` over stdio says
which verbs the sandbox's agent kit declares, runs each as the agent in a terminal (the
real supervisor builds its argv; its machine is tests/unit/sandbox/fakes.FakeMachine, no
QEMU), and refuses an undeclared one before the sandbox starts."""

from __future__ import annotations

import asyncio
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
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, State, Store
from tests.cli.test_kit_cli import SANDKIT
from tests.conftest import WriteKit
from tests.lsp.conftest import start
from tests.unit.sandbox.test_supervisor import Box, config_home, home, until  # noqa: F401

ALL_VERBS = """\
schemaVersion: "3"
kind: workload
build: |
  FROM docker/sandbox-templates:shell
  ENTRYPOINT ["tool"]
capabilities:
  - type: com.docker.sandbox/agent-sessions@1
    config:
      prompt: ["-p", "{{.Prompt}}"]
      continue: ["--continue"]
      resume: ["--resume", "{{.SessionID}}"]
  - type: com.docker.sandbox/agent-interactive-sessions@1
    config:
      prompt: ["--", "{{.Prompt}}"]
      continue: ["--continue"]
      resume: ["--resume={{.SessionID}}"]
"""
PROMPT_ONLY = """\
schemaVersion: "3"
kind: workload
build: |
  FROM docker/sandbox-templates:shell
  ENTRYPOINT ["tool"]
capabilities:
  - type: com.docker.sandbox/agent-sessions@1
    config:
      prompt: ["--prompt={{.Prompt}}"]
"""
NO_VERBS = 'schemaVersion: "3"\nkind: workload\n'
DEFAULTS = {"npmRegistryHost": "npm.test"}  # the host's registries are not looked up


@pytest_asyncio.fixture
async def lsp(home: Path) -> AsyncIterator[LanguageClient]:  # noqa: F811 (the fixture)
    """The server, with the test's store (the home fixture's environment)."""
    config = ClientServerConfig(server_command=[SANDKIT, "lsp"], server_env=dict(os.environ))
    client = await config.start()
    assert isinstance(client, LanguageClient)
    await start(client)
    yield client
    await client.shutdown_session()


async def run(client: LanguageClient, command: str, params: dict[str, Any]) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command, [params])
    )


def stopped(name: str, kit: Path) -> None:
    store = Store()
    config = Config(name=name, agent=str(kit), arg_defaults=DEFAULTS)
    sandbox = store.new(config)
    sandbox.save_config(config)
    sandbox.save_state(State(state=SandboxState.STOPPED))


async def test_the_verbs_a_kit_declares_are_listed(
    lsp: LanguageClient, write_kit: WriteKit
) -> None:
    for name, text, verbs in [
        ("every", ALL_VERBS, ["prompt", "continue", "resume"]),
        ("one", PROMPT_ONLY, ["prompt"]),  # a terminal runs the headless verbs then
        ("none", NO_VERBS, []),
    ]:
        stopped(name, write_kit(text, f"{name}-kit"))
        answer = await run(lsp, protocol.AGENT_VERBS, {"name": name})
        assert answer == {"kit": f"{name}-kit", "verbs": verbs}


async def test_an_undeclared_verb_is_refused_before_the_sandbox_starts(
    lsp: LanguageClient, write_kit: WriteKit
) -> None:
    stopped("box", write_kit(PROMPT_ONLY, "tool"))
    params = {"name": "box", "verb": "resume", "sessionId": "s-1"}
    with pytest.raises(JsonRpcException) as caught:
        await run(lsp, protocol.RUN_AGENT_VERB, params)
    assert caught.value.code == protocol.USER_ERROR
    assert "kit 'tool' declares no 'resume' session verb" in str(caught.value.message)
    assert Store().get("box").state().state is SandboxState.STOPPED  # never started


async def test_each_verb_runs_as_the_agent_in_a_terminal(
    home: Path,  # noqa: F811 (the fixture)
    lsp: LanguageClient,
    write_kit: WriteKit,
) -> None:
    kit = write_kit(ALL_VERBS, "tool")
    workspace = home / "project"
    workspace.mkdir()
    box = Box(home, Config(name="box", agent=str(kit), arg_defaults=DEFAULTS))
    await box.ready()  # a running supervisor: the editor's command does not boot one
    exits: list[Any] = []
    lsp.feature(protocol.TERMINAL_EXIT)(lambda ls, params: exits.append(params))
    guest = box.machine.guest
    cases = [
        ({"verb": "prompt", "prompt": "-fix it"}, ["tool", "--", "-fix it"]),
        ({"verb": "continue"}, ["tool", "--continue"]),
        ({"verb": "resume", "sessionId": "s-1"}, ["tool", "--resume=s-1"]),
    ]
    terminals = set()
    for params, _ in cases:
        started = await run(lsp, protocol.RUN_AGENT_VERB, {"name": "box", **params, "rows": 30})
        terminals.add(started["terminal"])
    assert len(terminals) == 3
    wanted = [argv for _, argv in cases]
    await asyncio.wait_for(until(lambda: all(a in guest.argvs for a in wanted)), 10)
    # Each ended with its program (the fake guest's exit 0), in a terminal of its own.
    await asyncio.wait_for(until(lambda: len(exits) == 3), 10)
    assert sorted(e.code for e in exits) == [0, 0, 0]
    box.supervisor.request_stop()
    await box.ended()
