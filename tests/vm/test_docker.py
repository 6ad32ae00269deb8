"""Docker Engine inside the sandbox (the image variant with docker.io): dockerd starts on
first use of the guest's /run/docker.sock, builds and runs images, bind-mounts the
workspace, runs docker-compose, keeps its images across a restart, and the host's own
Docker socket is never reachable from the guest or a container."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandkit.vm.image import DOCKER, ensure_image
from tests.vm.conftest import Env

NAME = "dockerbox"
IMAGE = "sk-busybox:test"
# The guest's static busybox, alone in a FROM-scratch image: nothing is pulled.
BUILD = f"""
set -e
ctx=$(mktemp -d)
cp "$(command -v busybox)" "$ctx/busybox"
printf 'FROM scratch\\nCOPY busybox /bin/busybox\\nENTRYPOINT ["/bin/busybox"]\\n' > "$ctx/Dockerfile"
docker build -q -t {IMAGE} "$ctx"
"""
COMPOSE = f"""
set -e
mkdir -p /tmp/two && cd /tmp/two
cat > docker-compose.yml <<'EOF'
version: "3"
services:
  one:
    image: {IMAGE}
    command: ["sleep", "600"]
  two:
    image: {IMAGE}
    command: ["sleep", "600"]
EOF
docker-compose up -d
docker ps --filter status=running --format '{{{{.Image}}}} {{{{.Names}}}}'
"""


@dataclass
class DockerBox:
    name: str
    workspace: Path


def sh(env: Env, script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``script`` in the sandbox as the agent user, in the workspace."""
    return env.sk("exec", NAME, "--", "sh", "-c", script, timeout=timeout)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def dbox(env: Env, tmp_path_factory: pytest.TempPathFactory) -> DockerBox:
    """One sandbox with the docker kit, shared by these tests; its image built once."""
    ensure_image(variant=DOCKER)  # minutes when not cached: before the boot's clock runs
    workspace = tmp_path_factory.mktemp("docker-ws")
    (workspace / "hello.txt").write_text("from the host workspace\n")
    ok(env.sk("run", "shell", str(workspace), "--name", NAME, "--docker",
              "--memory", "1g", "--", "true", timeout=900))  # fmt: skip
    return DockerBox(NAME, workspace)


@pytest.fixture(scope="session")
def scratch_image(env: Env, dbox: DockerBox) -> str:
    ok(sh(env, BUILD))
    return IMAGE


def test_the_socket_is_the_agents_and_docker_version_answers_both(
    env: Env, dbox: DockerBox
) -> None:
    assert ok(sh(env, "stat -c '%U:%G %a' /run/docker.sock")).split() == ["root:docker", "660"]
    assert "docker" in ok(sh(env, "id -nG")).split()
    versions = ok(sh(env, "docker version --format '{{.Client.Version}} {{.Server.Version}}'"))
    client, server = versions.split()
    assert client.startswith("20.10") and server.startswith("20.10")
    # dockerd was started by the agent, with the sandbox's proxy in its environment.
    environ = ok(sh(env, "sudo cat /proc/$(pidof dockerd)/environ | tr '\\0' '\\n'"))
    assert "HTTPS_PROXY=http://10.0.2.100:3128" in environ.splitlines()
    assert "overlay2" in ok(sh(env, "docker info --format '{{.Driver}}'"))


def test_logs_dockerd_prints_the_engines_log(env: Env, dbox: DockerBox) -> None:
    ok(sh(env, "docker info >/dev/null"))  # started (the socket starts it on first use)
    assert "Daemon has completed initialization" in ok(env.sk("logs", NAME, "dockerd"))


def test_build_from_scratch_and_run(env: Env, scratch_image: str) -> None:
    assert ok(sh(env, f"docker run --rm {scratch_image} echo hi")) == "hi\n"


def test_a_workspace_bind_mount_is_readable(env: Env, dbox: DockerBox, scratch_image: str) -> None:
    out = ok(sh(env, f'docker run --rm -v "$PWD":/src {scratch_image} cat /src/hello.txt'))
    assert out == "from the host workspace\n"


def test_compose_runs_two_services_from_the_local_image(env: Env, scratch_image: str) -> None:
    running = ok(sh(env, COMPOSE)).split("\n")
    assert sorted(line.split()[0] for line in running if line) == [IMAGE, IMAGE]
    ok(sh(env, "cd /tmp/two && docker-compose down"))


def test_images_survive_stop_and_start(env: Env, scratch_image: str) -> None:
    ok(env.sk("stop", NAME))
    ok(env.sk("start", NAME))
    assert ok(sh(env, f"docker image inspect --format '{{{{.Id}}}}' {scratch_image}")).startswith(
        "sha256:"
    )
    assert ok(sh(env, f"docker run --rm {scratch_image} echo again")) == "again\n"


@contextlib.contextmanager
def host_docker_socket() -> Iterator[tuple[Path, list[int]]]:
    """The host's Docker socket and the connections it accepts: /var/run/docker.sock, or
    for a user who cannot make that one (CI runs these tests as an ordinary user) where
    rootless Docker puts a user's ($XDG_RUNTIME_DIR/docker.sock, else a folder of the
    test's). A listener is made there when none exists, and removed after."""
    system = Path("/var/run/docker.sock")
    if system.exists():
        assert stat.S_ISSOCK(system.stat().st_mode)
        yield system, [0]  # the host's real daemon: nothing to count, only to not reach
        return
    folder = None
    if os.geteuid() == 0:
        path = system
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "docker.sock"
    else:
        folder = Path(tempfile.mkdtemp(prefix="host-docker-"))
        path = folder / "docker.sock"
    accepted = [0]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = server.accept()
                accepted[0] += 1
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    try:
        server.bind(str(path))
        server.listen()
        server.settimeout(0.2)
        thread.start()
        yield path, accepted
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        server.close()
        path.unlink(missing_ok=True)
        if folder is not None:
            folder.rmdir()


def test_the_hosts_docker_socket_is_never_reached(
    env: Env, dbox: DockerBox, scratch_image: str
) -> None:
    hostname = ok(sh(env, "hostname")).strip()
    with host_docker_socket() as (host_socket, accepted):
        # The guest's client answers the guest's own daemon (its name is the sandbox's).
        assert ok(sh(env, "docker -H unix:///var/run/docker.sock info --format '{{.Name}}'")) == (
            hostname + "\n"
        )
        # No mount of a host socket, in the guest or in a container given the path.
        assert "docker.sock" not in ok(sh(env, "cat /proc/mounts"))
        mounted = sh(
            env,
            f"docker run --rm -v /var/run/docker.sock:/host.sock {scratch_image} "
            "sh -c 'cat /proc/mounts; ls -l /host.sock'",
        )
        lines = ok(mounted).splitlines()
        assert lines[-1].startswith("s")  # a socket, the guest's own (root:docker there)
        if host_socket != Path("/var/run/docker.sock"):  # a user's: not even a path inside
            tried = sh(env, f"docker -H unix://{host_socket} info; test -e {host_socket}")
            assert tried.returncode != 0, tried.stdout
        assert accepted[0] == 0
