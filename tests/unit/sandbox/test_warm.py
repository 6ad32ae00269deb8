"""`run`'s early adoption request (sandbox/warm.py): sent before asyncio and pydantic
load, so that their imports overlap the member's adoption; its answer is taken by
pool.create_or_adopt like any claim's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandkit.sandbox import pool as warm_pool
from sandkit.sandbox import warm
from sandkit.sandbox.request import SandboxRequest, build
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Store
from sandkit.sandbox.supervisor import egress

from .test_supervisor import config_home, home, member, pool, until  # noqa: F401 (fixtures)

S = SandboxState

PROBE = """
import json, sys
from sandkit.sandbox import warm
from sandkit.sandbox.request import SandboxRequest, build
from sandkit.sandbox.store import Store
config = build(SandboxRequest(agent="shell", name="light", cpus=2, memory=1024))
assert warm.send(Store(), config) is None  # no member: nothing sent
heavy = ("asyncio", "pydantic", "importlib.metadata", "sandkit.sandbox.lifecycle", "logging")
print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))
"""


def test_the_request_goes_before_asyncio_and_pydantic(tmp_path: Path) -> None:
    """... and before importlib.metadata (~15 ms: warm.sandkit_version reads the
    dist-info itself), the lifecycle module and logging (~20 ms together)."""
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "SANDKIT_POOL_SIZE": "1",
    }
    # The first build resolves the kits (the kit engine is pydantic) and remembers what
    # it learned (sandbox/kitmemo.py), as a user's first `run` does; the next is light.
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env
        )
    assert json.loads(out.stdout) == []


async def test_a_member_adopted_through_the_early_request(
    home: Path,  # noqa: F811
    pool: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = await member(home)
    monkeypatch.setenv("SANDKIT_POOL_SIZE", "1")
    monkeypatch.setenv("SOME_HOST_VARIABLE", "not a credential's")
    config = build(SandboxRequest(agent="shell", name="mine", cpus=2, memory=1024))
    sent = warm.send(Store(), config)
    assert sent is not None and sent.member.name == box.sandbox.name
    # The member may be done (renamed to "mine") before this process reads its answer.
    await until(lambda: box.supervisor.runstate is S.RUNNING)
    sandbox, adopted = await warm_pool.create_or_adopt(Store(), config, None, sent)
    assert adopted and sandbox.name == "mine"
    assert sandbox.state().state is S.RUNNING and sandbox.state().adopted_from == sent.member.name
    assert egress.host_environ(box.supervisor) == {}  # the shell kit names no variable
    box.supervisor.request_stop()
    assert await box.ended() == 0


async def test_an_early_request_to_a_taken_member_falls_back(
    home: Path,  # noqa: F811
    pool: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = await member(home)
    monkeypatch.setenv("SANDKIT_POOL_SIZE", "1")
    first = build(SandboxRequest(agent="shell", name="first", cpus=2, memory=1024))
    second = build(SandboxRequest(agent="shell", name="second", cpus=2, memory=1024))
    sent_first, sent_second = warm.send(Store(), first), warm.send(Store(), second)
    assert sent_first is not None and sent_second is not None
    assert await warm_pool.adopt(Store(), first, {}, sent_first) is not None
    # The member is taken: the second client starts cold (no other member), nothing drained.
    assert await warm_pool.adopt(Store(), second, {}, sent_second) is None
    assert box.supervisor.runstate is S.RUNNING and box.supervisor.sandbox.name == "first"
    box.supervisor.request_stop()
    assert await box.ended() == 0


def test_the_light_identity_is_the_protocols() -> None:
    from sandkit.sandbox.protocol import Identity

    assert warm.local_identity() == Identity.local().model_dump()
    assert Identity.model_validate(warm.local_identity()).same_as(Identity.local())


def dist_info(folder: Path, version: str, name: str = "sandkit") -> Path:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    body = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nVersion: not-a-header\n"
    (info / "METADATA").write_text(body)
    return info


def test_the_version_is_the_first_installed_distributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As importlib.metadata.version("sandkit") answers: the first dist-info on sys.path
    (a foreign installation is told apart by it: tests/vm/test_foreign_pool_member.py)."""
    import importlib.metadata

    first, second = tmp_path / "a", tmp_path / "b"
    dist_info(first, "7.1.post2")
    dist_info(second, "9.9")
    dist_info(first, "1.0", name="sandkit_other")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(first), str(second)])
    assert warm.sandkit_version() == "7.1.post2" == importlib.metadata.version("sandkit")


def test_without_a_dist_info_the_version_is_the_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sandkit

    broken = tmp_path / "sandkit-2.0.dist-info"
    broken.mkdir()  # no METADATA: skipped, as importlib.metadata skips it
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert warm.sandkit_version() == sandkit.__version__


async def test_an_answer_waited_for_without_a_loop_is_kept_for_the_general_path(
    home: Path,  # noqa: F811
    pool: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cli/warmrun.py waits on a blocking socket (in a thread here: the member's
    supervisor runs in this test's loop); whatever the answer, pool.create_or_adopt
    reads the same one afterwards, without a second request."""
    import asyncio

    from sandkit.cli.execute import OneShotExec
    from sandkit.sandbox.wire import SupervisorError

    box = await member(home)
    monkeypatch.setenv("SANDKIT_POOL_SIZE", "1")
    first = build(SandboxRequest(agent="shell", name="first", cpus=2, memory=1024))
    second = build(SandboxRequest(agent="shell", name="second", cpus=2, memory=1024))
    sent_first, sent_second = warm.send(Store(), first), warm.send(Store(), second)
    assert sent_first is not None and sent_second is not None
    await asyncio.to_thread(sent_first.wait)
    assert sent_first.outcome == [None]
    sandbox, adopted = await warm_pool.create_or_adopt(Store(), first, None, sent_first)
    assert adopted and sandbox.name == "first"

    with pytest.raises(SupervisorError, match="pool member taken"):
        await asyncio.to_thread(sent_second.wait)
    assert await warm_pool.adopt(Store(), second, {}, sent_second) is None  # taken: cold

    # The adopted sandbox answers agent-argv over the same kind of blocking socket.
    call = OneShotExec.connect(sandbox.control)
    try:
        params = {"extra": ["cat", "README"], "interactive": False}
        reply = await asyncio.to_thread(call.ask, "agent-argv", params)
        assert reply == {"argv": ["cat", "README"]}
        with pytest.raises(SupervisorError, match="declares no 'resume' session verb"):
            await asyncio.to_thread(call.ask, "agent-argv", {**params, "verb": "resume"})
    finally:
        call.close()
    box.supervisor.request_stop()
    assert await box.ended() == 0
