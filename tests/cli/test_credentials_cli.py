"""Credentials from the command line (issue 16): a required credential with no value
stops `run`/`create` before anything is built, with the command that sets it; `secret
ls` shows OAuth sign-ins with their expiry and never a value. No VM: the sandboxes
here are refused, or made and never booted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.test_host_prerequisites import fresh_env, nothing_made
from tests.cli.test_kit_cli import SANDKIT
from tests.conftest import NEEDS_KEY_KIT as KIT
from tests.conftest import WriteKit


def sk(
    root: Path, *args: str, input: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**fresh_env(root), **extra}
    return subprocess.run(
        [SANDKIT, *args], env=env, input=input, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("verb", ["run", "create"])
def test_a_required_credential_without_value_stops_before_boot(
    tmp_path: Path, write_kit: WriteKit, verb: str
) -> None:
    kit = write_kit(KIT)
    ws = tmp_path / "ws"
    ws.mkdir()
    tail = ["--", "true"] if verb == "run" else []
    done = sk(tmp_path, verb, "shell", str(ws), "--kit", str(kit), *tail)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "sandkit secret set bar" in done.stderr
    assert "optional-one" not in done.stderr  # v2: optional unless marked
    nothing_made(tmp_path)


def test_a_stored_secret_or_an_allowed_host_variable_satisfies_it(
    tmp_path: Path, write_kit: WriteKit
) -> None:
    kit = write_kit(KIT)
    # A host variable the kit names is read only once allowed: not enough by itself.
    refused = sk(tmp_path, "create", "shell", "--name", "one", "--kit", str(kit), BAR_KEY="v")
    assert refused.returncode == 1 and "sandkit secret set bar" in refused.stderr
    allowed = sk(tmp_path, "secret", "set", "bar", "--from-env", "BAR_KEY")
    assert allowed.returncode == 0, allowed.stderr
    made = sk(tmp_path, "create", "shell", "--name", "one", "--kit", str(kit), BAR_KEY="v")
    assert made.returncode == 0, made.stderr
    # Without the variable, the stored secret for this sandbox only is enough.
    refused = sk(tmp_path, "create", "shell", "--name", "two", "--kit", str(kit))
    assert refused.returncode == 1
    stored = sk(tmp_path, "secret", "set", "bar", "--sandbox", "two", input="value\n")
    assert stored.returncode == 0, stored.stderr
    made = sk(tmp_path, "create", "shell", "--name", "two", "--kit", str(kit))
    assert made.returncode == 0, made.stderr
    refused = sk(tmp_path, "create", "shell", "--name", "three", "--kit", str(kit))
    assert refused.returncode == 1  # the sandbox-scoped value is two's alone


def test_secret_ls_shows_oauth_entries_with_expiry_never_values(tmp_path: Path) -> None:
    config = tmp_path / "config" / "sandkit"
    config.mkdir(parents=True)
    (config / "oauth.json").write_text(
        json.dumps(
            {
                "tokens": {
                    "global": {
                        "anthropic": {
                            "access": "real-access-do-not-print",
                            "refresh": "real-refresh-do-not-print",
                            "expires_at": 4102444800,
                            "scope": "user:inference",
                        }
                    }
                },
                "sentinels": {},
            }
        )
    )
    (config / "oauth.json").chmod(0o600)
    assert sk(tmp_path, "secret", "set", "github", input="ghp-do-not-print\n").returncode == 0
    done = sk(tmp_path, "secret", "ls")
    assert done.returncode == 0, done.stderr
    assert "do-not-print" not in done.stdout
    lines = done.stdout.splitlines()
    [oauth] = [line for line in lines if line.startswith("anthropic")]
    assert "oauth" in oauth and "2100-01-01" in oauth and "global" in oauth
    [key] = [line for line in lines if line.startswith("github")]
    assert "api key" in key and "global" in key
