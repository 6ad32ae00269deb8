"""The VS Code extension in a real VS Code: the .vsix installed into code-server, a
workspace opened in Debian's headless chromium and driven with playwright-core
(tests/vscode/e2e.js): a broken kit's diagnostic in the Problems panel; "Sandkit: Open
Workspace in Sandbox" boots a sandbox and its terminal runs in the VM; a request to an
unlisted host is asked about, "Allow once" lets it through, the network log view shows it;
the Sandboxes view shows the sandbox from the list the server pushes; changing
`sandkit.path` starts the server it names, and a terminal opened through that one runs in
the VM. Then (tests/vscode/sessions.js) the agent's terminal is a session: typed
into, closed (detached), the page reloaded, and the terminal is back with its output and
live. Screenshots of each step go to test-artifacts/vscode-e2e/."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from sandkit.vm.image import ensure_image
from tests.cli.test_kit_cli import SANDKIT
from tests.vm.conftest import Env

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parent.parent.parent
CLIENT = ROOT / "vscode-client"
ARTIFACTS = Path(os.environ.get("SANDKIT_ARTIFACTS", ROOT / "test-artifacts")) / "vscode-e2e"


def code_server() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "sandkit" / "code-server-4.100.3" / "node_modules" / ".bin" / "code-server"
    assert path.exists(), f"{path} is missing: run scripts/setup-vscode (scripts/test does)"
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_extension_in_code_server(env: Env, upstream: tuple[int, Path], tmp_path: Path) -> None:
    port, ca = upstream
    server = code_server()
    subprocess.run(
        ["npm", "run", "--silent", "package"],
        cwd=CLIENT,
        env={**os.environ, "SANDKIT": SANDKIT},
        check=True,
        capture_output=True,
        timeout=300,
    )
    ws = tmp_path / "project"
    (ws / "broken-kit").mkdir(parents=True)
    (ws / "broken-kit" / "spec.yaml").write_text('schemaVersion: "2"\nkind: mixn\nname: broken\n')
    (ws / ".sandkit.yaml").write_text(
        json.dumps(
            {
                "agent": "shell",
                "default": "deny-all",
                "memory": "512m",
                "resolve": {"other.test": "127.0.0.1"},
                "upstreamCa": str(ca),
            }
        )
    )
    home = tmp_path / "home"
    (home / "data" / "User").mkdir(parents=True)
    (home / "data" / "User" / "settings.json").write_text(
        json.dumps(
            {
                "security.workspace.trust.enabled": False,
                "workbench.startupEditor": "none",
                "telemetry.telemetryLevel": "off",
                "extensions.autoUpdate": False,
                "terminal.integrated.gpuAcceleration": "off",  # text in the DOM, readable
                "sandkit.path": SANDKIT,
            }
        )
    )
    (home / "cfg.yaml").write_text("auth: none\n")
    marker = tmp_path / "restarted"
    wrapper = tmp_path / "bin" / "sandkit"  # what sandkit.path becomes halfway through
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{SANDKIT}" "$@"\n')
    wrapper.chmod(0o755)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    # code-server's IPC sockets and Chromium's profile go to a private TMPDIR, removed at
    # the end (a short path: a socket's name must fit in 108 bytes).
    scratch = tempfile.mkdtemp(prefix="skv-")
    variables = {**env.vars, "HOME": str(home), "XDG_CACHE_HOME": cache, "TMPDIR": scratch}
    common = [
        "--config", str(home / "cfg.yaml"), "--user-data-dir", str(home / "data"),
        "--extensions-dir", str(home / "ext"),
    ]  # fmt: skip
    subprocess.run(
        [str(server), *common, "--install-extension", str(CLIENT / "sandkit.vsix")],
        env=variables,
        check=True,
        capture_output=True,
        timeout=120,
    )
    http = free_port()
    log = (tmp_path / "code-server.log").open("wb")
    proc = subprocess.Popen(
        [str(server), *common, "--auth", "none", "--bind-addr", f"127.0.0.1:{http}",
         "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
         "--disable-getting-started-override", str(ws)],
        env=variables, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "code-server did not come up"
                time.sleep(0.3)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["node", str(ROOT / "tests" / "vscode" / "e2e.js"),
             f"http://127.0.0.1:{http}/?folder={ws}", str(ARTIFACTS),
             ensure_image().kernel_release, f"https://other.test:{port}/",
             str(wrapper), str(marker)],
            env=variables, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        print(done.stdout)
        assert done.returncode == 0, done.stdout + done.stderr
        sessions = subprocess.run(
            ["node", str(ROOT / "tests" / "vscode" / "sessions.js"), f"http://127.0.0.1:{http}/?folder={ws}",
             str(ARTIFACTS)],
            env=variables, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        print(sessions.stdout)
        assert sessions.returncode == 0, sessions.stdout + sessions.stderr
        for shot in ("1-problems-panel", "2-terminal-in-the-vm", "3-approval-prompt",
                     "4-network-log", "5-sandboxes-view", "6-restarted", "7-agent-session",
                     "8-agent-restored"):  # fmt: skip
            assert (ARTIFACTS / f"{shot}.png").stat().st_size > 10_000
        assert marker.exists()
        settings = json.loads((home / "data" / "User" / "settings.json").read_text())
        assert settings["sandkit.path"] == str(wrapper)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)
        env.sk("rm", "-f", "shell-project")
