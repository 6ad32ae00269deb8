from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandkit.kits import resolve
from sandkit.sandbox.agent_command import agent_argv
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, SandboxError, State, Store, check_name, default_name


@pytest.mark.parametrize("name", ["ab", "my-box", "a.b_c", "x" * 63])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["a", "-ab", "ab-", "default", "a b", "x" * 64, "ä-b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(SandboxError, match="not a valid sandbox name"):
        check_name(name)


def test_default_name() -> None:
    assert default_name("shell", Path("/home/u/my proj")) == "shell-my-proj"
    assert default_name("./kits/claude", None) == "claude"


def test_store_roundtrip_and_crash_detection(tmp_path: Path) -> None:
    store = Store(tmp_path)
    box = store.new(Config(name="box1", agent="shell", workspace="/w"))
    box.save_config(Config(name="box1", agent="shell", workspace="/w"))
    assert store.get("box1").config().workspace == "/w"
    with pytest.raises(SandboxError, match="exists already"):
        store.new(Config(name="box1", agent="shell"))
    box.save_state(State(state=SandboxState.RUNNING, supervisor_pid=os.getpid()))
    assert box.state().state == "running"
    box.save_state(
        State(state=SandboxState.RUNNING, supervisor_pid=2**22 + 12345)
    )  # no such process
    assert box.state().state == "crashed" and "supervisor is gone" in (box.state().error or "")
    with pytest.raises(SandboxError, match="no sandbox named 'nope'"):
        store.get("nope")
    assert [s.name for s in store.all()] == ["box1"]
    store.remove(box)
    assert store.all() == []


def test_long_state_paths_use_short_socket_dirs(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    box = Store(deep).new(Config(name="box1", agent="shell"))
    assert len(str(box.control)) < 108 and str(box.control).startswith("/tmp/sandkit-")


@pytest.mark.parametrize(
    ("extra", "interactive", "expected"),
    [
        ([], False, ["claude", "--dangerously-skip-permissions"]),
        (
            ["--model", "opus"],
            False,
            ["claude", "--dangerously-skip-permissions", "--model", "opus"],
        ),
        (["bash"], False, ["bash"]),
    ],
)
def test_run_args_follow_sbx(extra: list[str], interactive: bool, expected: list[str]) -> None:
    sandbox = resolve(
        "claude",
        defaults={
            "npmRegistryHost": "registry.npm.test",
            "npmRegistry": "https://registry.npm.test/",
        },
    ).sandbox
    assert agent_argv(sandbox, extra, interactive) == expected
