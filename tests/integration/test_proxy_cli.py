"""`sandkit proxy serve`, `secret` and `policy` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.cli.test_kit_cli import SANDKIT
from tests.integration.conftest import Origins
from tests.integration.test_proxy import curl

KIT = """
schemaVersion: "2"
kind: mixin
name: api-creds
permissions:
  network:
    allow: [api.test, open.test]
    deny: [blocked.test]
credentials:
  - service: apitest
    apiKey:
      name: API_TEST_KEY
      proxyManaged: true
      inject: [{domain: api.test, header: x-api-key, format: "%s"}]
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "API_TEST_KEY": "",
    }


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    root = tmp_path / "kit"
    root.mkdir()
    (root / "spec.yaml").write_text(textwrap.dedent(KIT))
    return root


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SANDKIT, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_secret_store_roundtrip(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "secret", "set", "apitest", stdin="s3cret\n").returncode == 0
    store = tmp_path / "config" / "sandkit" / "secrets.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert json.loads(store.read_text()) == {"apitest": "s3cret"}
    assert run(env, "secret", "ls").stdout.split() == [
        "SERVICE",
        "KIND",
        "SCOPE",
        "EXPIRES",
        "apitest",
        "api",
        "key",
        "global",
    ]
    assert run(env, "secret", "rm", "apitest").returncode == 0
    gone = run(env, "secret", "rm", "apitest")
    assert gone.returncode == 1 and "no stored value for 'apitest'" in gone.stderr
    assert run(env, "secret", "set", "x", stdin="").returncode == 1


@pytest.mark.parametrize(
    ("target", "allowed", "text"),
    [
        ("api.test", True, "allowed: api.test:443 (allow-rule 'api.test' from api-creds ("),
        ("https://open.test:8443/x", True, "allowed: open.test:8443"),
        ("blocked.test", False, "denied: blocked.test:443 (deny-rule 'blocked.test'"),
        ("nowhere.test:80", False, "denied: nowhere.test:80 (default-deny)"),
    ],
)
def test_policy_check(
    env: dict[str, str], kit: Path, target: str, allowed: bool, text: str
) -> None:
    done = run(env, "policy", "check", "--kit", str(kit), "--default", "deny-all", target)
    assert done.returncode == (0 if allowed else 1)
    assert done.stdout.startswith(text)


async def test_serve_injects_and_logs(
    env: dict[str, str], kit: Path, origins: Origins, tmp_path: Path
) -> None:
    # The origins run on this test's event loop: everything here must await, not block.
    assert run(env, "secret", "set", "apitest", stdin="from-the-store").returncode == 0
    log = tmp_path / "decisions.jsonl"
    proc = await asyncio.create_subprocess_exec(
        SANDKIT,
        "proxy",
        "serve",
        "--kit",
        str(kit),
        "--default",
        "deny-all",
        "--log",
        str(log),
        "--resolve",
        "api.test=127.0.0.1",
        "--resolve",
        "blocked.test=127.0.0.1",
        "--upstream-ca",
        str(origins.ca_file),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert line.startswith("listening on http://sandkit:"), line
        url, ca = line.removeprefix("listening on ").split(" ca=")
        assert Path(ca).is_file()
        code, out, err = await curl(
            "-x", url, "--cacert", ca, f"https://api.test:{origins.https_port}/v1"
        )
        assert code == 0, err
        # The origin got the stored value; its echo of it comes back scrubbed.
        assert json.loads(out)["headers"]["x-api-key"].startswith("sandkit-placeholder-apitest-")
        _, out, _ = await curl("-x", url, f"http://blocked.test:{origins.http_port}/")
        assert "Blocked by sandkit network policy: blocked.test" in out
    finally:
        proc.send_signal(signal.SIGINT)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err_bytes
    assert "API_TEST_KEY=sandkit-placeholder-apitest-" in err_bytes.decode()
    table = run(env, "policy", "log", str(log)).stdout
    assert "Blocked requests:" in table and "Allowed requests:" in table
    blocked_part, allowed_part = table.split("Allowed requests:")
    assert "blocked.test" in blocked_part and "deny-rule" in blocked_part
    assert "api.test" in allowed_part
    assert "from-the-store" not in log.read_text()
    assert "carried the real secret of 'apitest' in its body" in log.read_text()
    records = [
        json.loads(x) for x in run(env, "policy", "log", "--json", str(log)).stdout.splitlines()
    ]
    assert {r["host"] for r in records} == {"api.test", "blocked.test"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["proxy", "serve", "--listen", "nonsense"], "--listen 'nonsense' is not HOST:PORT"),
        (["proxy", "serve", "--resolve", "x=not-an-ip"], "--resolve"),
        (["proxy", "serve", "--upstream-ca", "/nonexistent.pem"], "cannot load the upstream CA"),
        (["policy", "log", "/nonexistent.jsonl"], "no decision log at /nonexistent.jsonl"),
        (["policy", "check", "--kit", "/nonexistent", "a.com"], "no such kit"),
    ],
)
def test_bad_input_is_a_message(env: dict[str, str], args: list[str], message: str) -> None:
    done = run(env, *args)
    assert done.returncode == 1, done.stdout
    assert message in done.stderr and "Traceback" not in done.stderr


def test_corrupt_ca_fails_closed(env: dict[str, str], tmp_path: Path) -> None:
    ca_dir = tmp_path / "config" / "sandkit" / "ca"
    ca_dir.mkdir(parents=True)
    key = ca_dir / "ca-key.pem"
    key.write_text("garbage")
    key.chmod(0o600)
    (ca_dir / "ca-cert.pem").write_text("garbage")
    done = run(env, "proxy", "serve")
    assert done.returncode == 1
    assert "the sandbox CA" in done.stderr and "cannot be loaded" in done.stderr
