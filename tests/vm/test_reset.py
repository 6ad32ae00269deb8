"""`sandkit reset`: a guest wiped with `sudo rm -rf --no-preserve-root /` gets a fresh disk
from the image; the workspace, its held sync changes, the kits and the published ports
are kept (the kits applied again)."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import pytest

from tests.vm.conftest import Env

pytestmark = pytest.mark.vm

KIT = """\
    schemaVersion: "2"
    kind: mixin
    name: marked
    setup:
      files:
        - path: /etc/marked.conf
          content: "from the kit"
"""


def test_reset_brings_a_wiped_guest_back_with_the_workspace(env: Env, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    before = {f"file{i}.txt": f"content {i}" for i in range(5)}
    for rel, text in before.items():
        (workspace / rel).write_text(text)
    kit = tmp_path / "marked"
    kit.mkdir()
    (kit / "spec.yaml").write_text(textwrap.dedent(KIT))
    name = "reset-box"
    env.sk("create", "shell", str(workspace), "--name", name, "--kit", str(kit),
           "--memory", "512m", check=True)  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        host = s.getsockname()[1]
    env.sk("ports", name, "--publish", f"{host}:8000", check=True)  # recorded while stopped
    env.sk("start", name, check=True, timeout=600)
    assert env.sk("exec", name, "--", "cat", "/etc/marked.conf", check=True).stdout == (
        "from the kit"
    )

    env.sk(
        "exec", name, "--", "sh", "-c", "sudo rm -rf --no-preserve-root /; echo done",
        timeout=300,
    )  # fmt: skip
    broken = env.sk("exec", name, "--", "true")
    assert broken.returncode != 0  # the guest really lost its users and programs

    done = env.sk("reset", "-f", name, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "a fresh guest disk, started" in done.stdout
    env.sk("exec", name, "--", "true", check=True)
    assert env.sk("exec", name, "--", "cat", "/etc/marked.conf", check=True).stdout == (
        "from the kit"
    )  # the kits applied again, their once-per-sandbox steps too
    assert {p.name: p.read_text() for p in workspace.iterdir()} == before  # host side intact
    published = json.loads(env.sk("ports", name, "--json", check=True).stdout)["ports"]
    assert {"guest": 8000, "host": host, "host_ip": "127.0.0.1", "proto": "tcp"} in published
    # The wipe's deletions in the workspace are held (the sync state is kept), and
    # rejecting them puts the host's files back in the new guest.
    assert "change(s) the old guest made in the workspace are held" in done.stderr
    assert env.sk("exec", name, "--", "ls", check=True).stdout == ""
    env.sk("sync", "reject", name, check=True)
    listed = env.sk("exec", name, "--", "ls", check=True).stdout.split()
    assert sorted(listed) == sorted(before)
    assert env.sk("exec", name, "--", "cat", "file3.txt", check=True).stdout == "content 3"
    env.sk("rm", "-f", name, timeout=120)
