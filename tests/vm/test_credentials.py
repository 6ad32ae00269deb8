"""Security invariants 1 and 3 with a real VM: the real credential reaches its own host
(as the configured header) and nowhere else; inside the guest there is only a placeholder."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.cli.test_kit_cli import SANDKIT
from tests.vm.conftest import Env
from tests.vm.secretscan import file_contains, memory_dump

pytestmark = pytest.mark.vm
SECRET = "real-secret-7f3e9b1c5d"

KIT = """
schemaVersion: "2"
kind: mixin
name: api-test
permissions:
  network:
    allow: [api.test, other.test]
credentials:
  - service: apitest
    apiKey:
      name: APITEST_KEY
      proxyManaged: true
      inject: [{domain: api.test, header: Authorization, format: "Bearer %s"}]
environment:
  variables: {FROM_KIT: "kit-value"}
"""


def test_credentials_reach_their_host_only(
    env: Env, upstream: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca = upstream
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "spec.yaml").write_text(textwrap.dedent(KIT))
    assert env.sk("secret", "set", "apitest", input=SECRET).returncode == 0
    name = "creds"
    env.sk(
        "create",
        "shell",
        "--name",
        name,
        "--kit",
        str(kit),
        "--default",
        "deny-all",
        "--memory",
        "512m",
        "--upstream-ca",
        str(ca),
        "--resolve",
        "api.test=127.0.0.1",
        "--resolve",
        "other.test=127.0.0.1",
        "--resolve",
        "blocked.test=127.0.0.1",
        check=True,
    )
    try:
        inside = env.sk(
            "exec", name, "--", "sh", "-c", "echo $APITEST_KEY; echo $FROM_KIT", check=True
        )
        placeholder, from_kit = inside.stdout.split()
        assert placeholder.startswith("sandkit-placeholder-apitest-") and from_kit == "kit-value"

        got = env.sk(
            "exec",
            name,
            "--",
            "curl",
            "-sS",
            f"https://api.test:{port}/v1",
            "-H",
            f"Authorization: Bearer {placeholder}",
            check=True,
        )
        expected = hashlib.sha256(f"Bearer {SECRET}".encode()).hexdigest()
        assert json.loads(got.stdout)["authorization_sha256"] == expected

        # Invariant 8: a server that reflects what it gets (CORS Origin, an echo) never
        # hands the real secret back: the placeholder outside Authorization is not
        # replaced, and the injected Authorization comes back scrubbed.
        reflected = env.sk(
            "exec", name, "--", "curl", "-sS", "-D", "-", f"https://api.test:{port}/reflect",
            "-H", f"Authorization: Bearer {placeholder}", "-H", f"Origin: {placeholder}",
            check=True,
        )  # fmt: skip
        assert SECRET not in reflected.stdout
        assert f"access-control-allow-origin: {placeholder}" in reflected.stdout.lower()
        assert f"Bearer {placeholder}" in reflected.stdout  # the echo, scrubbed back

        other = env.sk(
            "exec",
            name,
            "--",
            "curl",
            "-sS",
            f"https://other.test:{port}/",
            "-H",
            f"X-Token: {placeholder}",
            check=True,
        )
        assert json.loads(other.stdout)["headers"]["X-Token"] == placeholder  # never replaced

        blocked = env.sk(
            "exec",
            name,
            "--",
            "curl",
            "-sS",
            "-o",
            "/dev/stderr",
            "-w",
            "%{http_code}",
            f"https://blocked.test:{port}/",
        )
        assert "403" in blocked.stdout or "403" in blocked.stderr
        plain = env.sk("exec", name, "--", "curl", "-sS", f"http://blocked.test:{port}/")
        assert "Blocked by sandkit network policy: blocked.test" in plain.stdout
        env.decisions(name, lambda rs: any(r["host"] == "blocked.test" for r in rs))
        log = env.sk("policy", "log", name, check=True).stdout
        blocked_part, allowed_part = log.split("Allowed requests:")
        assert "blocked.test" in blocked_part and "api.test" in allowed_part

        # Invariant 1: the secret is nowhere in the guest. Searched from the host, so the
        # needle itself never enters the guest: every process's environment, the guest's disk
        # (its overlay) and the workspace share; then its memory.
        environ = env.sk(
            "exec",
            "-u",
            "root",
            name,
            "--",
            "sh",
            "-c",
            "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; true",
        )
        assert placeholder in environ.stdout and SECRET not in environ.stdout
        env.sk("exec", "-u", "root", name, "--", "sync", check=True)
        box_dir = env.state / name
        assert not file_contains(box_dir / "disk.qcow2", SECRET.encode())
        assert not any(
            file_contains(p, SECRET.encode()) for p in (box_dir / "share").rglob("*") if p.is_file()
        )
        # … and not in the guest's memory while a process holds the placeholder.
        sleeper = subprocess.Popen(
            [SANDKIT, "exec", name, "--", "sh", "-c", 'sleep 30 # "$APITEST_KEY"'],
            env=env.vars,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            dump = asyncio.run(memory_dump(name))
            assert dump.stat().st_size > 256 << 20
            assert not file_contains(dump, SECRET.encode())
            assert file_contains(dump, placeholder.encode())  # the scan does find what is there
            dump.unlink()
        finally:
            sleeper.kill()
            sleeper.wait()
    finally:
        env.sk("rm", "-f", name)


LIVE_KIT = """
schemaVersion: "2"
kind: mixin
name: live-test
permissions:
  network:
    allow: [api.test]
credentials:
  - service: bar
    apiKey:
      name: BAR_KEY
      proxyManaged: true
      inject: [{domain: api.test, header: Authorization, format: "Bearer %s"}]
"""


def _live_kit(tmp_path: Path) -> Path:
    kit = tmp_path / "live-kit"
    kit.mkdir()
    (kit / "spec.yaml").write_text(textwrap.dedent(LIVE_KIT))
    return kit


def _sha(value: str) -> str:
    return hashlib.sha256(f"Bearer {value}".encode()).hexdigest()


CALL = 'curl -sS -H "Authorization: Bearer $BAR_KEY" https://api.test:{port}/v1'


def test_secret_set_while_running_applies_to_the_next_request(
    env: Env, upstream: tuple[int, Path], tmp_path: Path
) -> None:
    """`secret set|rm --sandbox NAME` on a running sandbox: the next request carries the
    new value (the supervisor was told), and the guest's placeholder stays the same."""
    port, ca = upstream
    name = "live"
    env.sk(
        "create", "shell", "--name", name, "--kit", str(_live_kit(tmp_path)), "--memory", "512m",
        "--upstream-ca", str(ca), "--resolve", "api.test=127.0.0.1", check=True,
    )  # fmt: skip
    try:
        call = CALL.format(port=port)
        first = env.sk("exec", name, "--", "sh", "-c", f"echo $BAR_KEY; {call}", check=True)
        placeholder, body = first.stdout.split("\n", 1)
        assert json.loads(body)["authorization_sha256"] == _sha(placeholder)  # no value yet
        env.sk("secret", "set", "bar", "--sandbox", name, input="first-value-1a2b", check=True)
        got = env.sk("exec", name, "--", "sh", "-c", call, check=True)
        assert json.loads(got.stdout)["authorization_sha256"] == _sha("first-value-1a2b")
        env.sk("secret", "set", "bar", input="global-value-3c4d", check=True)  # global
        env.sk("secret", "rm", "bar", "--sandbox", name, check=True)  # the global one now
        again = env.sk("exec", name, "--", "sh", "-c", f"echo $BAR_KEY; {call}", check=True)
        same, body = again.stdout.split("\n", 1)
        assert same == placeholder
        assert json.loads(body)["authorization_sha256"] == _sha("global-value-3c4d")
    finally:
        env.sk("secret", "rm", "bar")
        env.sk("rm", "-f", name)


@pytest.mark.parametrize("pool", ["0", "1"])
def test_a_host_variable_reaches_cold_and_adopted_sandboxes(
    env: Env, upstream: tuple[int, Path], tmp_path: Path, pool: str
) -> None:
    """`BAR_KEY=... sandkit run`: the value the client sees is the one injected, whether
    the sandbox boots cold or adopts a pool member started earlier with no BAR_KEY."""
    port, ca = upstream
    value = f"host-env-value-{pool}-5e6f"
    shell = Env({**env.vars, "SANDKIT_POOL_SIZE": pool}, env.state)
    shell.sk("secret", "set", "bar", "--from-env", "BAR_KEY", check=True)  # the user's grant
    if pool == "1":
        shell.sk("pool", "fill", "--memory", "512m", timeout=600, check=True)
    name = f"hostenv{pool}"
    caller = Env({**shell.vars, "BAR_KEY": value}, env.state)
    try:
        done = caller.sk(
            "run", "shell", "--name", name, "--kit", str(_live_kit(tmp_path)), "--memory",
            "512m", "--upstream-ca", str(ca), "--resolve", "api.test=127.0.0.1",
            "--", "sh", "-c", CALL.format(port=port), timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["authorization_sha256"] == _sha(value)
        state = json.loads((env.state / name / "state.json").read_text())
        assert bool(state.get("adopted_from")) is (pool == "1")
    finally:
        env.sk("rm", "-f", name)
        if pool == "1":
            shell.sk("pool", "drain", timeout=300)
