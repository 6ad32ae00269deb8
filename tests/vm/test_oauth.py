"""OAuth through the proxy with a real VM (issue 16): the host holds a sign-in (real
tokens in its 0600 store); the guest gets a credential file with sentinels only, calls
the resource host with the sentinel, and the upstream sees the real token. Neither the
guest's files nor its memory hold a real token."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from sandkit.kits.model import OAuthSpec
from sandkit.net.oauth import Tokens
from sandkit.net.tokens import TokenStore
from tests.cli.test_kit_cli import SANDKIT
from tests.vm.conftest import Env
from tests.vm.secretscan import file_contains, memory_dump

pytestmark = pytest.mark.vm
ACCESS = "real-oauth-access-8d7c6b5a4f3e"
REFRESH = "real-oauth-refresh-2e1d0c9b8a7f"

KIT = """
schemaVersion: "2"
kind: mixin
name: oauth-test
permissions:
  network:
    allow: [api.test, other.test]
credentials:
  - service: oauthtest
    oauth:
      tokenEndpoint: {host: other.test, path: /oauth/token}
      resourceHosts: [api.test]
      sentinels: {accessToken: oat-proxy-managed, refreshToken: ort-proxy-managed}
      credentialFile:
        path: ~/.oauth-test/auth.json
        structure:
          oauthtest:
            type: oauth
            access: "{{.AccessToken}}"
            refresh: "{{.RefreshToken}}"
            expires: "{{.ExpiresAt}}"
"""


def test_oauth_sentinels_in_the_guest_real_token_upstream(
    env: Env, upstream: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca = upstream
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "spec.yaml").write_text(textwrap.dedent(KIT))
    store = TokenStore()  # the env fixture points this process at the test's config
    store.put("oauthtest", Tokens(ACCESS, REFRESH, time.time() + 3600, "inference"))
    name = "oauthbox"
    env.sk(
        "create", "shell", "--name", name, "--kit", str(kit), "--default", "deny-all",
        "--memory", "512m", "--upstream-ca", str(ca), "--resolve", "api.test=127.0.0.1",
        "--resolve", "other.test=127.0.0.1", check=True,
    )  # fmt: skip
    try:
        read = env.sk("exec", name, "--", "cat", "/home/agent/.oauth-test/auth.json", check=True)
        entry = json.loads(read.stdout)["oauthtest"]
        sentinels = store.sentinels(name, "oauthtest", _spec(kit))
        assert entry["access"] == sentinels.access and entry["refresh"] == sentinels.refresh
        assert entry["access"].startswith("oat-proxy-managed-")
        assert isinstance(entry["expires"], int) and entry["type"] == "oauth"
        assert ACCESS not in read.stdout and REFRESH not in read.stdout

        # The agent's call: the token it read from its credential file, as a bearer.
        call = f'curl -sS -H "Authorization: Bearer {entry["access"]}" https://api.test:{port}/v1'
        got = env.sk("exec", name, "--", "sh", "-c", call, check=True)
        expected = hashlib.sha256(f"Bearer {ACCESS}".encode()).hexdigest()
        assert json.loads(got.stdout)["authorization_sha256"] == expected

        # The reflecting upstream echoes what reached it: the guest sees the sentinel.
        reflected = env.sk(
            "exec", name, "--", "curl", "-sS", "-D", "-", f"https://api.test:{port}/reflect",
            "-H", f"Authorization: Bearer {sentinels.access}", check=True,
        )  # fmt: skip
        assert ACCESS not in reflected.stdout
        assert f"Bearer {sentinels.access}" in reflected.stdout

        # No real token in the guest's memory while a process holds the sentinel.
        sleeper = subprocess.Popen(
            [SANDKIT, "exec", name, "--", "sh", "-c", "sleep 30 # $(cat ~/.oauth-test/auth.json)"],
            env=env.vars,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            dump = asyncio.run(memory_dump(name))
            assert not file_contains(dump, ACCESS.encode())
            assert not file_contains(dump, REFRESH.encode())
            assert file_contains(dump, sentinels.access.encode())  # the scan finds what is there
            dump.unlink()
        finally:
            sleeper.kill()
            sleeper.wait()
    finally:
        env.sk("rm", "-f", name)
        store.remove("oauthtest")


def _spec(kit: Path) -> OAuthSpec:
    from sandkit.kits.resolution import load_ref

    [cred] = load_ref(str(kit)).kit.credentials
    assert cred.oauth is not None
    return cred.oauth
