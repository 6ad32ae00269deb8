"""host-mount@1 in real guests: a file written in one sandbox is read in another started
with the same kit (and at once, both running); the install step already sees the mount;
the host folder is private (0700) and holds the files; the mount point is the agent's with
the kit's mode; the storage outlives a restart (a cold boot: microvm, shares on its
command line) and the sandboxes' removal."""

from __future__ import annotations

import json
import os
import stat
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.vm.conftest import Env

pytestmark = pytest.mark.vm

POINT = "/home/agent/.cache/sk-hm/tool"
KIT = f"""
schemaVersion: "3"
kind: mixin
capabilities:
  - type: com.docker.sandbox/host-mount@1
    config: {{path: {POINT}, mode: "0770"}}
  - type: com.docker.sandbox/lifecycle@1
    config:
      install:
        - command: echo installed >> {POINT}/installs
          user: "1000"
"""


@dataclass
class Pair:
    env: Env
    storage: Path  # $XDG_DATA_HOME/sandkit/host-mounts
    names: tuple[str, str]

    def sh(self, name: str, script: str) -> str:
        return self.env.sk("exec", name, "--", "sh", "-c", script, check=True).stdout


@pytest.fixture(scope="module")
def pair(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two sandboxes of the same kit, booted once for the module."""
    root = tmp_path_factory.mktemp("hostmount")
    kit = root / "cachekit"
    kit.mkdir()
    (kit / "spec.yaml").write_text(textwrap.dedent(KIT))
    hm_env = Env({**env.vars, "XDG_DATA_HOME": str(root / "data")}, env.state)
    names = ("hm-a", "hm-b")
    try:
        for name in names:
            hm_env.sk("create", "shell", "--name", name, "--kit", str(kit), "--memory", "512m",
                      check=True)  # fmt: skip
        yield Pair(hm_env, root / "data" / "sandkit" / "host-mounts", names)
    finally:
        hm_env.sk("rm", "-f", *names)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_what_one_sandbox_writes_the_other_reads_and_the_host_keeps_privately(
    pair: Pair,
) -> None:
    a, b = pair.names
    pair.sh(a, f"echo from-a > {POINT}/note")
    assert pair.sh(b, f"cat {POINT}/note") == "from-a\n"
    pair.sh(b, f"echo from-b > {POINT}/other")  # both running: shared at once
    assert pair.sh(a, f"cat {POINT}/other") == "from-b\n"
    # The agent's mount, with the kit's mode; a missing parent was made the agent's too.
    seen = pair.sh(a, f"stat -c '%u %a %m' {POINT}; stat -c %u {POINT}/..; id -un").split()
    assert seen == ["1000", "770", POINT, "1000", "agent"]
    # Mounted before the install step, which ran once in each sandbox.
    assert pair.sh(b, f"cat {POINT}/installs") == "installed\ninstalled\n"
    (key,) = list(pair.storage.iterdir())
    data = key / "data"
    assert mode(pair.storage) == mode(key) == 0o700
    assert mode(data) == 0o770
    assert (data / "note").read_text() == "from-a\n"
    assert json.loads((key / "kit.json").read_text())["path"] == POINT
    if os.geteuid() == 0:  # virtiofsd as root: the guest's agent is uid 1000 on the host
        assert (data / "note").stat().st_uid == 1000
    else:  # in its user namespace the agent is the user
        assert (data / "note").stat().st_uid == os.getuid()


def test_the_storage_outlives_a_restart_and_the_sandboxes(pair: Pair) -> None:
    a, b = pair.names
    pair.sh(a, f"echo kept > {POINT}/kept")
    pair.env.sk("stop", a, check=True)
    # The next exec starts it again from its disk (a cold boot: the share on the command line).
    assert pair.sh(a, f"cat {POINT}/kept; grep -c installed {POINT}/installs") == "kept\n2\n"
    (key,) = list(pair.storage.iterdir())
    pair.env.sk("rm", "-f", a, b, check=True)
    assert (key / "data" / "kept").read_text() == "kept\n"


def test_a_sandbox_with_host_mounts_starts_cold_and_leaves_the_pool_member(pair: Pair) -> None:
    """A member has no shares of the kit's folders: it is not adopted (it stays pooled for
    the next sandbox), and the sandbox starts from the golden with its shares hotplugged."""
    from tests.vm.conftest import wait_for_member

    env = Env({**pair.env.vars, "SANDKIT_POOL_SIZE": "1"}, pair.env.state)
    kit = Path(pair.storage.parents[2]) / "cachekit"
    env.sk("pool", "fill", "--memory", "512m", timeout=600, check=True)
    member = wait_for_member(env, "pooled (")
    try:
        env.sk("create", "shell", "--name", "hm-c", "--kit", str(kit), "--memory", "512m",
               check=True)  # fmt: skip
        state = json.loads((env.state / "hm-c" / "state.json").read_text())
        assert state["adopted_from"] is None
        assert (env.state / member).is_dir()  # still waiting for a sandbox without them
        seen = env.sk("exec", "hm-c", "--", "stat", "-c", "%m %u", POINT, check=True).stdout
        assert seen.split() == [POINT, "1000"]
    finally:
        env.sk("rm", "-f", "hm-c")
        env.sk("pool", "drain", timeout=300)
