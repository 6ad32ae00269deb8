"""Package registries from the host's configuration. A login written into a registry URL
(pip's index-url, npm's registry) never reaches the guest: the guest gets the URL without
it and the proxy sends it, as Basic auth, to that registry alone. The answers are cached
in a file only the user can read, and they come from the user's configuration: never from
the directory sandkit happens to run in."""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import trustme
from aiohttp import web

from sandkit import hostconfig
from sandkit.net.proxy import EgressProxy
from sandkit.sandbox.store import Config, Sandbox
from sandkit.sandbox.supervisor import Supervisor
from tests.cli.test_kit_cli import SANDKIT
from tests.integration.test_proxy import curl_json

PIP_HOST = "pypi.registry.test"
NPM_HOST = "npm.registry.test"
PIP_TOKEN = "pip-t0ken/with:odd@chars"  # percent-encoded in the URL
NPM_TOKEN = "npm-t0ken-5a1d"
PIP_URL = f"https://pyuser:{PIP_TOKEN.replace('/', '%2F').replace(':', '%3A').replace('@', '%40')}@{PIP_HOST}/simple"
NPM_URL = f"https://npmuser:{NPM_TOKEN}@{NPM_HOST}/npm/"


def user_env(home: Path) -> dict[str, str]:
    """A user whose home is ``home``: their pip and npm configuration, their caches."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("PIP_INDEX", "PIP_EXTRA", "PIP_CONFIG", "NPM_CONFIG"))
    }
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
    )
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text(f"[global]\nindex-url = {PIP_URL}\n")
    (home / ".npmrc").write_text(f"registry={NPM_URL}\n")
    return home


def inspect(env: dict[str, str], cwd: Path, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    """What a sandbox with the python-dev and node kits is given, as `kit inspect` shows it."""
    return subprocess.run(
        [
            SANDKIT,
            "kit",
            "inspect",
            "--resolved",
            "--json",
            "shell",
            "--kit",
            "python-dev",
            "--kit",
            "node",
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        umask=umask,
    )


def guest_environment(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    environment = resolved["environment"]
    assert isinstance(environment, dict)
    return environment


def test_logins_in_registry_urls_never_reach_the_guest(home: Path) -> None:
    done = inspect(user_env(home), home)
    env = guest_environment(done)
    assert env["PIP_INDEX_URL"] == f"https://{PIP_HOST}/simple"
    assert env["NPM_CONFIG_REGISTRY"] == f"https://{NPM_HOST}/npm/"
    for secret in (PIP_TOKEN, "pip-t0ken", NPM_TOKEN, "pyuser", "npmuser"):
        assert secret not in done.stdout and secret not in done.stderr


def test_the_registry_cache_is_readable_by_the_user_alone(home: Path) -> None:
    # Even when sandkit runs with a umask that would let everyone read what it writes.
    guest_environment(inspect(user_env(home), home, umask=0))
    memo = home / ".cache" / "sandkit" / "registries.json"
    assert stat.S_IMODE(memo.stat().st_mode) == 0o600
    # A memo others can read is not trusted (an older sandkit wrote them 0644): asked again,
    # and written back 0600.
    memo.chmod(0o644)
    guest_environment(inspect(user_env(home), home))
    assert stat.S_IMODE(memo.stat().st_mode) == 0o600


def test_the_current_directory_is_not_the_users_configuration(home: Path, tmp_path: Path) -> None:
    # A cloned repository: a project .npmrc, and a `pip` package that `python -m pip`
    # would import from the current directory.
    project = tmp_path / "repo"
    (project / "pip").mkdir(parents=True)
    (project / "package.json").write_text("{}\n")
    (project / ".npmrc").write_text("registry=https://project.registry.test/\n")
    (project / "pip.conf").write_text("[global]\nindex-url = https://project.registry.test/\n")
    marker = tmp_path / "ran"
    (project / "pip" / "__init__.py").write_text("")
    (project / "pip" / "__main__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (home / ".npmrc").unlink()  # no user registry for npm: npm's own default applies
    env = user_env(home)

    first = guest_environment(inspect(env, project))
    assert not marker.exists(), "a `pip` module from the current directory was run"
    assert "project.registry.test" not in json.dumps(first)
    assert first["PIP_INDEX_URL"] == f"https://{PIP_HOST}/simple"
    # The answers cached while standing in the repository serve later sandboxes elsewhere:
    # they must be the user's, the same as asked from anywhere else.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    later = guest_environment(inspect(env, elsewhere))
    assert later["NPM_CONFIG_REGISTRY"] == first["NPM_CONFIG_REGISTRY"]
    (home / ".cache" / "sandkit" / "registries.json").unlink()
    fresh = guest_environment(inspect(env, elsewhere))
    assert fresh["NPM_CONFIG_REGISTRY"] == first["NPM_CONFIG_REGISTRY"]


# -- the proxy sends the login ---------------------------------------------------------


@pytest.fixture
def as_user(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key, value in user_env(home).items():
        monkeypatch.setenv(key, value)
    for key in list(os.environ):
        if key.upper().startswith(("PIP_INDEX", "PIP_EXTRA", "PIP_CONFIG", "NPM_CONFIG")):
            monkeypatch.delenv(key)
    forget_answers()  # this process may have asked pip and npm as its own user
    yield home
    forget_answers()


def forget_answers() -> None:
    """Clear the in-process memo of hostconfig's answers, wherever it is kept."""
    for name in ("_answers", "registry_args"):
        clear = getattr(getattr(hostconfig, name, None), "cache_clear", None)
        if clear is not None:
            clear()


@pytest_asyncio.fixture
async def registry(tmp_path: Path) -> AsyncIterator[tuple[int, Path, list[dict[str, str]]]]:
    """An HTTPS registry on loopback that keeps the headers of every request it gets (the
    proxy scrubs a login the registry would echo, so the answer cannot tell)."""
    ca = trustme.CA()
    ca_file = tmp_path / "registry-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(PIP_HOST, NPM_HOST).configure_cert(context)

    received: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        received.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield port, ca_file, received
    await runner.cleanup()


async def test_the_proxy_sends_the_login_the_guest_never_saw(
    as_user: Path, registry: tuple[int, Path, list[dict[str, str]]]
) -> None:
    port, ca_file, received = registry
    config = Config(
        name="registry-login",
        agent="shell",
        kits=["python-dev", "node"],
        kit_args={"debianMirrorHost": "mirror.registry.test"},
        arg_defaults=hostconfig.registry_args(),
        default_policy="deny-all",
        resolve={PIP_HOST: "127.0.0.1", NPM_HOST: "127.0.0.1"},
        upstream_ca=str(ca_file),
        host_cas=False,
    )
    sandbox = Sandbox(as_user / "sandboxes", config.name)
    sandbox.dir.mkdir(parents=True)
    sandbox.save_config(config)
    supervisor = Supervisor(sandbox)
    settings = await supervisor.proxy_settings()
    assert supervisor.guest_env["PIP_INDEX_URL"] == f"https://{PIP_HOST}/simple"
    guest = json.dumps(supervisor.guest_env) + supervisor.ca_pem.decode()
    for secret in (PIP_TOKEN, NPM_TOKEN, "pyuser", "npmuser"):
        assert secret not in guest

    proxy = EgressProxy(settings)
    _, proxy_port = await proxy.start()
    try:
        for host, user, token in (
            (PIP_HOST, "pyuser", PIP_TOKEN),
            (NPM_HOST, "npmuser", NPM_TOKEN),
        ):
            answer = await curl_json(
                "-x",
                f"http://127.0.0.1:{proxy_port}",
                "--cacert",
                str(settings.ca.cert_path),
                f"https://{host}:{port}/simple/",
            )
            assert answer == {"path": "/simple/"}
            sent = received.pop()["authorization"]
            assert sent == "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    finally:
        await proxy.aclose()
