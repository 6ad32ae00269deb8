"""`sandkit login` with a real VM (issue 16, item 2). The agent's login is a small script in
the guest (installed by the test kit): it prints the URL to open, reads the code typed on
the host, and exchanges it at a local OAuth token endpoint on the host's loopback (TLS from
a test CA), through the proxy. Afterwards the real tokens are on the host only, and a new
sandbox with the kit starts signed in. A second script takes the code from the browser's
redirect to a guest port instead, which `login` publishes for it."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import subprocess
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import trustme

from sandkit.net.tokens import TokenStore
from tests.cli.test_kit_cli import SANDKIT
from tests.vm.conftest import Env

pytestmark = pytest.mark.vm
ACCESS = "real-login-access-5e4d3c2b1a09"
REFRESH = "real-login-refresh-90a1b2c3d4e5"
CODE = "code-typed-on-the-host"

KIT = """
schemaVersion: "2"
kind: sandbox
name: login-agent
sandbox:
  image: docker/sandbox-templates:shell
  entrypoint: [bash, -l]
permissions:
  network:
    allow: [auth.test, api.test]
credentials:
  - service: logintest
    required: true
    oauth:
      tokenEndpoint: {host: auth.test, path: /oauth/token}
      resourceHosts: [api.test]
      sentinels: {accessToken: lat-proxy-managed, refreshToken: lrt-proxy-managed}
      credentialFile:
        path: ~/.login-agent/auth.json
        structure:
          access: "{{.AccessToken}}"
          refresh: "{{.RefreshToken}}"
          expires: "{{.ExpiresAt}}"
setup:
  install:
    - user: "0"
      description: the agent's login command
      command: |
        cat > /usr/local/bin/login-agent-login <<'EOF'
        #!/bin/sh
        # An agent's headless login: the URL to open, the code pasted back, the exchange.
        set -e
        echo "Open https://auth.test:$1/authorize?client_id=login-agent and paste the code:"
        read -r code
        mkdir -p ~/.login-agent
        curl -sS --fail-with-body -d "grant_type=authorization_code&code=$code" \\
          "https://auth.test:$1/oauth/token" > ~/.login-agent/answer.json
        echo "token answer: $(cat ~/.login-agent/answer.json)"
        EOF
        chmod 755 /usr/local/bin/login-agent-login
        cat > /usr/local/bin/login-agent-callback <<'EOF'
        #!/usr/bin/env python3
        # A callback-style login: the browser comes back to localhost:PORT with the code.
        import http.server, subprocess, sys, urllib.parse
        origin, port = sys.argv[1], int(sys.argv[2])
        codes = []
        class Callback(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                codes.extend(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["code"])
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"signed in: close this tab")
            def log_message(self, *args):
                pass
        server = http.server.HTTPServer(("127.0.0.1", port), Callback)
        print(f"Open https://auth.test:{origin}/authorize?redirect_uri=http://localhost:{port}/cb", flush=True)
        while not codes:
            server.handle_request()
        subprocess.run(["curl", "-sS", "--fail-with-body", "-o", "/dev/null", "-d",
                        f"grant_type=authorization_code&code={codes[0]}",
                        f"https://auth.test:{origin}/oauth/token"], check=True)
        EOF
        chmod 755 /usr/local/bin/login-agent-callback
"""


@dataclass
class Seen:
    grants: list[dict[str, list[str]]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)


class OAuthOrigin(BaseHTTPRequestHandler):
    """The token endpoint (auth.test) and the resource host (api.test) in one server."""

    seen: Seen

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        self.seen.grants.append(form)
        if form.get("grant_type") == ["authorization_code"] and form.get("code") == [CODE]:
            self._answer(
                200,
                {
                    "access_token": ACCESS,
                    "refresh_token": REFRESH,
                    "expires_in": 3600,
                    "token_type": "Bearer",
                },
            )
        else:
            self._answer(400, {"error": "invalid_grant"})

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen.auth.append(auth)
        self._answer(200, {"authorization_sha256": hashlib.sha256(auth.encode()).hexdigest()})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[tuple[int, Path, Seen]]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("auth.test", "api.test").configure_cert(ctx)
    seen = Seen()
    handler = type("Handler", (OAuthOrigin,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], tmp_path / "ca.pem", seen
    server.shutdown()
    server.server_close()


def test_login_signs_in_on_the_host_and_new_sandboxes_start_signed_in(
    env: Env, origin: tuple[int, Path, Seen], tmp_path: Path
) -> None:
    port, ca, seen = origin
    kit = tmp_path / "test-kit"
    kit.mkdir()
    (kit / "spec.yaml").write_text(textwrap.dedent(KIT))
    pins = ["--resolve", "auth.test=127.0.0.1", "--resolve", "api.test=127.0.0.1"]
    shape = ["--memory", "512m", "--default", "deny-all", "--upstream-ca", str(ca), *pins]

    # Required and not signed in: a sandbox with the kit is refused before it boots.
    refused = env.sk("create", str(kit), "--name", "before-login", *shape)
    assert refused.returncode == 1 and "logintest" in refused.stderr

    done = env.sk(
        "login", str(kit), "--command", f"login-agent-login {port}", *shape,
        input=CODE + "\n", timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"https://auth.test:{port}/authorize" in done.stdout  # the agent's URL, shown here
    assert (
        "signed in to logintest; the tokens stay on this machine; sandboxes with the "
        "login-agent kit start signed in"
    ) in done.stdout
    assert seen.grants and seen.grants[-1]["code"] == [CODE]  # the code typed here went in
    assert "token answer:" in done.stdout and "lat-proxy-managed-" in done.stdout
    assert ACCESS not in done.stdout and REFRESH not in done.stdout  # the guest got sentinels
    stored = TokenStore().get("logintest")
    assert stored is not None and (stored.access, stored.refresh) == (ACCESS, REFRESH)
    listed = json.loads(env.sk("ls", "--json", check=True).stdout)
    assert not [r for r in listed if r["name"].startswith("login-")]  # the throwaway is gone

    secrets = env.sk("secret", "ls", check=True).stdout
    [line] = [x for x in secrets.splitlines() if x.startswith("logintest")]
    expiry = time.strftime("%Y-%m-%d", time.gmtime(stored.expires_at or 0))
    assert "oauth" in line and expiry in line and "global" in line
    assert ACCESS not in secrets and REFRESH not in secrets

    name = "after-login"
    env.sk("create", str(kit), "--name", name, *shape, check=True)
    try:
        read = env.sk("exec", name, "--", "cat", "/home/agent/.login-agent/auth.json", check=True)
        entry = json.loads(read.stdout)
        assert entry["access"].startswith("lat-proxy-managed-")
        assert entry["refresh"].startswith("lrt-proxy-managed-")
        assert ACCESS not in read.stdout and REFRESH not in read.stdout
        call = f'curl -sS -H "Authorization: Bearer {entry["access"]}" https://api.test:{port}/me'
        got = env.sk("exec", name, "--", "sh", "-c", call, check=True)
        expected = hashlib.sha256(f"Bearer {ACCESS}".encode()).hexdigest()
        assert json.loads(got.stdout)["authorization_sha256"] == expected
        assert seen.auth[-1] == f"Bearer {ACCESS}"
    finally:
        env.sk("rm", "-f", name)
        TokenStore().remove("logintest")


def test_a_callback_login_gets_its_port_published_for_the_browser(
    env: Env, origin: tuple[int, Path, Seen], tmp_path: Path
) -> None:
    """The agent listens on a guest port for the browser's redirect: `login` publishes it
    on the same host port while the login runs, and the code arrives that way."""
    port, ca, seen = origin
    kit = tmp_path / "test-kit"
    kit.mkdir()
    (kit / "spec.yaml").write_text(textwrap.dedent(KIT))
    with socket.socket() as s:  # a port free on the host, for the guest's callback too
        s.bind(("127.0.0.1", 0))
        callback = s.getsockname()[1]
    argv = [
        SANDKIT, "login", str(kit), "--command", f"login-agent-callback {port} {callback}",
        "--memory", "512m", "--default", "deny-all", "--upstream-ca", str(ca),
        "--resolve", "auth.test=127.0.0.1", "--resolve", "api.test=127.0.0.1",
    ]  # fmt: skip
    login = subprocess.Popen(
        argv,
        env=env.vars,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert login.stdout is not None
        shown = ""
        while f"published on 127.0.0.1:{callback}" not in shown:
            line = login.stdout.readline()
            assert line, f"login ended first: {shown}"
            shown += line
        assert f"redirect_uri=http://localhost:{callback}/cb" in shown  # the URL, shown here
        # The browser, redirected back with the code.
        with urllib.request.urlopen(f"http://127.0.0.1:{callback}/cb?code={CODE}") as answer:
            assert answer.read() == b"signed in: close this tab"
        out, err = login.communicate(timeout=300)
        assert login.returncode == 0, shown + out + err
        assert "signed in to logintest" in out
        assert seen.grants[-1]["code"] == [CODE]
        stored = TokenStore().get("logintest")
        assert stored is not None and stored.access == ACCESS
    finally:
        if login.poll() is None:
            login.kill()
            login.communicate()
        TokenStore().remove("logintest")
