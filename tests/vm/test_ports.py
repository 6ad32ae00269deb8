"""Published ports in a real VM: a guest web server reached from the host through QEMU's
host forwarding (added and removed at run time), a kit's port published at start, and a
guest that still cannot connect out to the host (restrict=on holds)."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.vm.conftest import Env

pytestmark = pytest.mark.vm

KIT = """\
    schemaVersion: "2"
    kind: mixin
    name: serves
    ports:
      - container: 8001
        name: preview
"""


@dataclass
class Served:
    name: str
    workspace: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ports(env: Env, name: str) -> dict[str, Any]:
    data = json.loads(env.sk("ports", name, "--json", check=True).stdout)
    assert isinstance(data, dict)
    return data


def wait_listening(env: Env, name: str, port: int) -> None:
    """The guest's own view (/proc/net/tcp through the agent), before the host connects."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port in ports(env, name)["listening"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"guest port {port} never listened: {ports(env, name)}")


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as response:
        return str(response.read().decode())


@pytest.fixture(scope="module")
def served(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One sandbox with the kit that declares port 8001, and two guest web servers: on
    all addresses (8000) and on the guest's loopback only (8001)."""
    root = tmp_path_factory.mktemp("ports")
    workspace = root / "ws"
    workspace.mkdir()
    (workspace / "listed-file.txt").write_text("x")
    kit = root / "serves"
    kit.mkdir()
    (kit / "spec.yaml").write_text(textwrap.dedent(KIT))
    name = "ports-box"
    env.sk("create", "shell", str(workspace), "--name", name, "--kit", str(kit),
           "--memory", "512m", check=True)  # fmt: skip
    env.sk("start", name, check=True, timeout=600)
    for args in ("8000", "--bind 127.0.0.1 8001"):  # detached: they outlive the exec
        env.sk(
            "exec", name, "--", "sh", "-c",
            f"nohup python3 -m http.server {args} >/dev/null 2>&1 &",
            check=True,
        )  # fmt: skip
    yield Served(name, workspace)
    env.sk("rm", "-f", name, timeout=120)


def test_publish_reaches_a_guest_server_and_unpublish_closes_it(env: Env, served: Served) -> None:
    wait_listening(env, served.name, 8000)
    host = free_port()
    done = env.sk("ports", served.name, "--publish", f"{host}:8000", check=True)
    assert f"published 127.0.0.1:{host} -> guest port 8000/tcp" in done.stdout
    assert "listed-file.txt" in fetch(host)  # the guest's listing of the workspace
    table = env.sk("ports", served.name, check=True).stdout
    assert f"127.0.0.1:{host}" in table and "8000/tcp" in table
    listed = json.loads(env.sk("ls", "--json", check=True).stdout)
    row = next(r for r in listed if r["name"] == served.name)
    assert {"guest": 8000, "host": host, "host_ip": "127.0.0.1", "proto": "tcp"} in row["ports"]
    assert f"127.0.0.1:{host}->8000" in env.sk("ls", check=True).stdout

    env.sk("ports", served.name, "--unpublish", "8000", check=True)
    with pytest.raises(urllib.error.URLError) as refused:
        fetch(host)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    assert all(p["guest"] != 8000 for p in ports(env, served.name)["ports"])


def test_a_kit_port_is_published_at_start_and_reaches_a_loopback_listener(
    env: Env, served: Served
) -> None:
    """The kit's 8001 was published when the sandbox started (on host port 8001 when that
    was free); the server behind it listens on the guest's 127.0.0.1 only."""
    published = ports(env, served.name)["ports"]
    kit_port = next(p for p in published if p["guest"] == 8001)
    assert kit_port["host_ip"] == "127.0.0.1" and kit_port["host"] > 0
    wait_listening(env, served.name, 8001)
    assert "listed-file.txt" in fetch(kit_port["host"])


def test_a_published_sandbox_still_cannot_reach_the_host(env: Env, served: Served) -> None:
    """restrict=on holds with forwards in place: a service on the host's loopback is not
    reachable from the guest (QEMU's 10.0.2.2 is the host), though the host reaches it."""
    accepted: list[str] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            accepted.append("x")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()  # it does serve
        deadline = time.monotonic() + 10
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert accepted == ["x"]
        assert any(p["guest"] == 8001 for p in ports(env, served.name)["ports"])
        probe = (
            "import socket,sys\n"
            "try:\n"
            f"    socket.create_connection(('10.0.2.2', {port}), timeout=10)\n"
            "except OSError as e:\n"
            "    print('refused', e); sys.exit(3)\n"
            "print('connected')\n"
        )
        done = env.sk("exec", served.name, "--", "python3", "-c", probe, timeout=120)
        assert done.returncode == 3, done.stdout + done.stderr
        assert "connected" not in done.stdout
        assert accepted == ["x"]  # the guest's attempt never arrived
    finally:
        server.close()
        thread.join(10)
