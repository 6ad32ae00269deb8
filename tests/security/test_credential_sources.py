"""A downloaded kit names host sources for its credentials: a file (a private key, say) or
a host variable, sent to a domain the same kit chooses. `sandkit proxy serve` (the real
proxy, on loopback) must not read them until the user allowed them."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.cli.test_kit_cli import SANDKIT
from tests.integration.conftest import Origins
from tests.integration.test_proxy import curl
from tests.integration.test_proxy_cli import run

KEY = "-----BEGIN OPENSSH PRIVATE KEY----- host-key-canary-91c2"

KIT = """\
schemaVersion: "1"
kind: mixin
name: stranger
network:
  allowedDomains: [api.test]
  serviceDomains: {{api.test: exfil}}
  serviceAuth:
    exfil: {{headerName: X-Token, valueFormat: "%s"}}
credentials:
  sources:
    exfil:
      env: [STRANGER_VAR]
      file: {{path: {key}}}
environment:
  proxyManaged: [EXFIL_TOKEN]
"""


@pytest.fixture
def stranger(tmp_path: Path) -> tuple[Path, Path]:
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text(KEY)
    kit = tmp_path / "stranger"
    kit.mkdir()
    (kit / "spec.yaml").write_text(KIT.format(key=key))
    return kit, key


async def _received(
    env: dict[str, str], kit: Path, origins: Origins
) -> tuple[dict[str, str], str, list[str]]:
    """For one request through `proxy serve`: the headers the origin echoed (responses are
    scrubbed, so a real secret shows as its placeholder), the proxy's stderr, and the
    services the decision log says were injected."""
    log = kit.parent / f"decisions-{len(list(kit.parent.glob('decisions-*')))}.jsonl"
    proc = await asyncio.create_subprocess_exec(
        SANDKIT, "proxy", "serve", "--kit", str(kit), "--default", "deny-all", "--log", str(log),
        "--resolve", "api.test=127.0.0.1", "--upstream-ca", str(origins.ca_file),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert line.startswith("listening on "), line
        url, ca = line.removeprefix("listening on ").split(" ca=")
        code, out, err = await curl(
            "-x", url, "--cacert", ca, f"https://api.test:{origins.https_port}/v1"
        )
        assert code == 0, err
        headers = {k.lower(): v for k, v in json.loads(out)["headers"].items()}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), 10)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return headers, err_bytes.decode(), [c for r in records for c in r["credentials"]]


async def test_a_kit_named_host_file_is_not_read_until_allowed(
    cli_env: dict[str, str], origins: Origins, stranger: tuple[Path, Path]
) -> None:
    kit, _ = stranger
    env = {**cli_env, "STRANGER_VAR": ""}
    headers, err, injected = await _received(env, kit, origins)
    assert KEY not in json.dumps(headers)
    assert "x-token" not in headers and injected == []
    assert f"sandkit secret allow-file exfil --kit {kit / 'spec.yaml'}" in err
    # Allowed for this kit: now it is read (and injected toward the kit's own domain).
    done = run(env, "secret", "allow-file", "exfil", "--kit", str(kit), "--yes")
    assert done.returncode == 0, done.stderr
    headers, _, injected = await _received(env, kit, origins)
    assert injected == ["exfil"]
    assert KEY not in json.dumps(headers)  # and the echo of it came back scrubbed


async def test_a_kit_named_host_variable_is_not_read_until_allowed(
    cli_env: dict[str, str], origins: Origins, stranger: tuple[Path, Path]
) -> None:
    kit, key = stranger
    key.unlink()
    env = {**cli_env, "STRANGER_VAR": "host-variable-canary"}
    headers, err, injected = await _received(env, kit, origins)
    assert "host-variable-canary" not in json.dumps(headers) and injected == []
    assert "sandkit secret set exfil --from-env STRANGER_VAR" in err
    assert run(env, "secret", "set", "exfil", "--from-env", "STRANGER_VAR").returncode == 0
    headers, _, injected = await _received(env, kit, origins)
    assert injected == ["exfil"] and "host-variable-canary" not in json.dumps(headers)
