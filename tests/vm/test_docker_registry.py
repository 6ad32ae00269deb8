"""Docker's traffic through the sandbox proxy, on the docker variant: dockerd pushes to and
pulls from a real registry on the host (Debian's docker-registry, its own CA, htpasswd
logins) with the login injected by the proxy and no `docker login`; a registry the policy
does not allow is refused with the reason in docker's own error; a container's traffic is
policed like the guest's and reaches nothing the guest cannot."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandkit.net.decisions import Decision, read_log
from sandkit.vm.image import DOCKER, ensure_image
from tests.registry import SERVICE, Registry, running_registry, write_kit
from tests.vm.conftest import Env

NAME = "regbox"
DENIED = "denied-registry.test"  # pinned to the same registry; no kit allows it
REPO = "sandkit/tiny"
# The guest's static busybox alone in a FROM-scratch image: nothing is pulled to build it.
BUILD = """
set -e
ctx=$(mktemp -d)
cp "$(command -v busybox)" "$ctx/busybox"
printf 'FROM scratch\\nCOPY busybox /bin/busybox\\nENTRYPOINT ["/bin/busybox"]\\n' > "$ctx/Dockerfile"
docker build -q -t {tag} "$ctx"
"""


@dataclass
class RegBox:
    registry: Registry
    decisions: Path

    @property
    def tag(self) -> str:
        return f"{self.registry.address}/{REPO}:1"

    def records(self, after: int = 0) -> list[Decision]:
        return read_log(self.decisions)[after:] if self.decisions.exists() else []

    def wait_for(self, after: int, method: str, path: str) -> Decision:
        """The decision for ``method path`` (a path ending in ``/``: any below it) logged
        after ``after`` records (the log is flushed every 0.2 s, a moment after)."""
        for _ in range(100):
            for r in self.records(after):
                below = path.endswith("/") and (r.path or "").startswith(path)
                if r.method == method and (r.path == path or below):
                    return r
            time.sleep(0.1)
        raise AssertionError(f"no {method} {path} in {self.records(after)}")


def sh(env: Env, script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return env.sk("exec", NAME, "--", "sh", "-c", script, timeout=timeout)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def rbox(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegBox]:
    ensure_image(variant=DOCKER)  # minutes when not cached: before the boot's clock runs
    with running_registry(tmp_path_factory.mktemp("registry")) as registry:
        kit = write_kit(tmp_path_factory.mktemp("kit") / "registry-test", registry.host)
        ok(env.sk("secret", "set", SERVICE, input=registry.password))
        ok(env.sk("create", "shell", "--name", NAME, "--kit", "docker", "--kit", str(kit),
                  "--default", "deny-all", "--memory", "1g",
                  "--upstream-ca", str(registry.ca_file),
                  "--resolve", f"{registry.host}=127.0.0.1", "--resolve", f"{DENIED}=127.0.0.1",
                  timeout=900))  # fmt: skip
        box = RegBox(registry, env.state / NAME / "decisions.jsonl")
        ok(sh(env, BUILD.format(tag=box.tag)))
        try:
            yield box
        finally:
            env.sk("rm", "-f", NAME, timeout=120)


def test_push_rmi_pull_through_the_proxy_with_no_login(env: Env, rbox: RegBox) -> None:
    mark = len(rbox.records())
    ok(sh(env, f"docker push {rbox.tag}"))
    manifest = f"/v2/{REPO}/manifests/1"
    pushed = rbox.wait_for(mark, "PUT", manifest)
    assert (pushed.action, pushed.status, pushed.credentials) == ("allowed", 201, [SERVICE])
    assert pushed.host == rbox.registry.host and pushed.port == rbox.registry.port
    assert rbox.registry.password not in rbox.decisions.read_text()

    ok(sh(env, f"docker rmi {rbox.tag}"))
    assert sh(env, f"docker image inspect {rbox.tag}").returncode != 0
    mark = len(rbox.records())
    ok(sh(env, f"docker pull {rbox.tag}"))
    # docker pull asks for the tag's manifest (HEAD), then fetches by digest.
    for method, path in (("HEAD", manifest), ("GET", f"/v2/{REPO}/blobs/")):
        pulled = rbox.wait_for(mark, method, path)
        assert (pulled.action, pulled.status, pulled.credentials) == ("allowed", 200, [SERVICE])
    assert ok(sh(env, f"docker run --rm {rbox.tag} echo pulled")) == "pulled\n"

    # The login never entered the guest: no `docker login`, only the proxy settings.
    config = json.loads(ok(sh(env, "cat ~/.docker/config.json")))
    assert "auths" not in config
    assert config["proxies"]["default"]["httpsProxy"] == "http://10.0.2.100:3128"
    assert ok(sh(env, "stat -c %U:%a ~/.docker ~/.docker/config.json")).split() == [
        "agent:700",
        "agent:600",
    ]


def test_a_registry_not_allowed_is_refused_with_its_reason(env: Env, rbox: RegBox) -> None:
    denied = f"{DENIED}:{rbox.registry.port}/{REPO}:1"
    mark = len(rbox.records())
    ok(sh(env, f"docker tag {rbox.tag} {denied}"))
    pushed = sh(env, f"docker push {denied}")
    assert pushed.returncode != 0
    said = pushed.stdout + pushed.stderr
    assert f"Blocked by sandkit network policy: {DENIED}:{rbox.registry.port}" in said, said
    assert "no rule allows this host and the default policy is 'deny-all'" in said, said
    for _ in range(100):
        refused = [r for r in rbox.records(mark) if r.host == DENIED]
        if refused:
            break
        time.sleep(0.1)
    assert refused and all(
        (r.method, r.action, r.reason, r.status) == ("CONNECT", "blocked", "default-deny", 403)
        for r in refused
    )


def test_a_containers_traffic_is_policed_like_the_guests(env: Env, rbox: RegBox) -> None:
    image = rbox.tag
    # Through the proxy (the variables docker gave the container): refused, with reason.
    guest = sh(env, "curl -sS http://unlisted.test/")
    assert "Blocked by sandkit network policy: unlisted.test" in guest.stdout
    contained = sh(env, f"docker run --rm {image} wget -q -O- http://unlisted.test/")
    assert contained.returncode != 0
    assert "403" in contained.stdout + contained.stderr
    env_lines = ok(sh(env, f"docker run --rm {image} env")).splitlines()
    assert "HTTPS_PROXY=http://10.0.2.100:3128" in env_lines
    # Around the proxy: the guest reaches nothing (restrict=on), and neither does a
    # container, not even the host's registry through the user network's host address.
    direct = f"http://10.0.2.2:{rbox.registry.port}/v2/"
    assert sh(env, f"curl -sS --noproxy '*' -m 10 {direct}").returncode != 0
    around = sh(env, f"docker run --rm {image} wget -Y off -T 10 -q -O- {direct}")
    assert around.returncode != 0
    mark = len(rbox.records())
    assert sh(env, f"docker run --rm {image} wget -q -O- http://unlisted.test/").returncode != 0
    for _ in range(100):
        if [r for r in rbox.records(mark) if r.host == "unlisted.test"]:
            break
        time.sleep(0.1)
    (record,) = [r for r in rbox.records(mark) if r.host == "unlisted.test"]
    assert (record.action, record.status) == ("blocked", 403)
