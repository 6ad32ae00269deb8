"""Real microVMs (TCG in CI). Sandbox state goes to a temporary XDG_STATE_HOME; the guest
image stays in the real XDG cache, so it is built once per machine (per user). One sandbox
is booted for the whole session and shared by the tests that only need a running VM.

Every test in this folder is marked `vm`: scripts/test runs them as an ordinary user that
it creates (sandkit must not need root), and the rest of the suite as root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.cli.test_kit_cli import SANDKIT


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.vm)


@dataclass
class Env:
    vars: dict[str, str]
    state: Path

    def sk(
        self, *args: str, input: str | None = None, timeout: float = 300, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [SANDKIT, *args],
            env=self.vars,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"sandkit {' '.join(args)} -> {done.returncode}\n{done.stderr}")
        return done

    def decisions(
        self, name: str, until: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """The sandbox's decision log (`policy log --json`) once ``until`` holds for it:
        the proxy flushes it every 0.2 s, later under load."""
        deadline = time.monotonic() + 30
        while True:
            out = self.sk("policy", "log", name, "--json", check=True).stdout
            records = [json.loads(line) for line in out.splitlines()]
            if until(records) or time.monotonic() > deadline:
                return records
            time.sleep(0.2)


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("vm")
    variables = {
        **os.environ,
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_DATA_HOME": str(root / "data"),  # host-mount@1 storage
        "SANDKIT_POOL_SIZE": "0",  # tests of the warm pool turn it on themselves
    }
    e = Env(variables, root / "state" / "sandkit" / "sandboxes")
    names = ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "SANDKIT_POOL_SIZE")
    old = {k: os.environ.get(k) for k in names}
    os.environ.update({k: variables[k] for k in old})  # in-process clients see the same store
    yield e
    e.sk("pool", "drain", timeout=300)  # waits for a background refill, then removes it
    e.sk("rm", "-f", "--all", timeout=120)
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@dataclass
class Box:
    name: str
    workspace: Path
    run_output: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def box(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Box:
    """The shared sandbox, created and booted by `sandkit run` itself."""
    workspace = tmp_path_factory.mktemp("workspace")
    (workspace / "README.md").write_text("from the host\n")
    done = env.sk(
        "run", "shell", str(workspace), "--name", "vmbox", "--memory", "768m", "--", "uname", "-r"
    )
    return Box("vmbox", workspace, done)


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An HTTPS echo server on the host, with its own CA, for api.test, other.test and
    blocked.test (each pinned to 127.0.0.1 with --resolve)."""
    root = tmp_path_factory.mktemp("upstream")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    ca.issue_cert(
        "api.test", "other.test", "blocked.test"
    ).private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "echo_server.py"), str(root / "server.pem")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield port, root / "ca.pem"
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()


def eventually(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Polls ``check`` until it holds: a guest under TCG on a busy machine takes its time,
    so the bound only stops a test that would otherwise wait forever."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


def wait_for_member(env: Env, *needles: str, timeout: float = 300) -> str:
    """The name of a paused pool member whose supervisor logged all the needles."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for folder in env.state.glob("pool-*"):
            try:
                state = json.loads((folder / "state.json").read_text())
                log = (folder / "supervisor.log").read_text()
            except (OSError, ValueError):  # just made, or removed meanwhile
                continue
            if state.get("state") == "pooled" and all(n in log for n in needles):
                return folder.name
        time.sleep(0.5)
    raise AssertionError(f"no pooled member logged {needles}")
