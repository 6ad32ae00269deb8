"""Only its own sandbox reaches a proxy (issue 14, item 3; security invariant 9).

The proxy injects the owner's real credentials and raises approval prompts in the owner's
terminal and editor, so another local user must not be able to use it:
- a sandbox's proxy listens on a Unix socket in a private folder, and the VM's forward (the
  command QEMU runs per guest connection) reaches it there;
- `sandkit proxy serve` keeps a TCP port for curl, but serves only requests that carry its
  per-run token (`http://sandkit:TOKEN@127.0.0.1:PORT`), and never forwards the token.

"Another user" is `nobody` through setpriv when the tests run as root, else one of the
user's subordinate ids mapped alone into a user namespace: a stranger either way."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from sandkit.errors import ProxyError
from sandkit.net.access import TokenAccess, bind_private
from sandkit.net.actions import DefaultPolicy
from sandkit.net.decisions import DecisionLog
from sandkit.net.guard import Resolver
from sandkit.net.inject import Injector
from sandkit.net.policy import Policy
from sandkit.net.proxy import EgressProxy, ProxySettings
from sandkit.net.tls import CertificateAuthority
from sandkit.vm import qemu
from tests.cli.test_kit_cli import SANDKIT
from tests.integration.conftest import HOSTS, REAL_SECRET, Origins, credentials, rule
from tests.integration.conftest import origins as origins  # a fixture
from tests.integration.conftest import trust_ca as trust_ca  # a fixture
from tests.integration.test_proxy import curl


def as_another_user() -> list[str]:
    """A command prefix that runs a client as a uid that is not ours: as root, nobody
    (setpriv); as anyone else, the first of our subordinate ids, mapped alone into a user
    namespace (newuidmap), so that on the host it is a stranger to our files."""
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    from sandkit.vm.hostcheck import subordinate_range

    uid, gid = subordinate_range("u").start, subordinate_range("g").start
    maps = [f"--map-users={uid},0,1", f"--map-groups={gid},0,1"]
    return ["unshare", *maps, "--setuid=0", "--setgid=0", "--"]


OTHER_USER = as_another_user()

# A client for a Unix-socket proxy: one absolute-form request, the answer on stdout, or
# the name of the error that stopped it.
CLIENT = """
import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused:", errno.errorcode.get(e.errno, e.errno)); sys.exit(3)
s.sendall(sys.argv[2].encode())
while data := s.recv(65536):
    sys.stdout.write(data.decode("latin-1"))
"""


async def run(*argv: str, stdin: bytes = b"", cwd: str = "/") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def request(port: int, path: str = "/hello") -> str:
    return (
        f"GET http://allowed.test:{port}{path} HTTP/1.1\r\n"
        f"Host: allowed.test:{port}\r\nConnection: close\r\n\r\n"
    )


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every user may enter (pytest's own is root's alone, which would hide what
    the proxy's folder does): only the proxy's private folder may keep others out."""
    path = Path(tempfile.mkdtemp(prefix="sandkit-access-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def sandbox_settings(home: Path) -> ProxySettings:
    return ProxySettings(
        policy=Policy([rule("allowed.test")], [], DefaultPolicy.DENY_ALL),
        ca=CertificateAuthority.load_or_create(home / "ca"),
        log=DecisionLog(),
        resolver=Resolver(dict.fromkeys(HOSTS, "127.0.0.1")),
    )


@pytest_asyncio.fixture
async def socket_proxy(open_folder: Path, tmp_path: Path) -> AsyncIterator[Path]:
    """A sandbox's proxy, set up as the supervisor does: its folder was made by someone
    else's umask (0755), and bind_private makes it private before binding."""
    folder = open_folder / "egress"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    path = folder / "proxy.sock"
    settings = sandbox_settings(tmp_path)
    proxy = EgressProxy(settings)
    await proxy.start(sock=bind_private(path))
    try:
        yield path
    finally:
        await proxy.aclose()


async def test_another_user_cannot_connect_to_a_sandbox_proxy(
    socket_proxy: Path,
    open_folder: Path,
    origins: Origins,  # the fixture imported above
) -> None:
    assert stat.S_IMODE(socket_proxy.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(socket_proxy.stat().st_mode) == 0o600
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python is not None
    ask = request(origins.http_port)

    code, out, _ = await run(*OTHER_USER, python, "-c", CLIENT, str(socket_proxy), ask)
    assert (code, out.strip()) == (3, "refused: EACCES")

    # The same user reaches a socket in a folder that lets it in: what refused it above is
    # the proxy's private folder, not something about this test.
    control = socket.socket(socket.AF_UNIX)
    control.bind(str(open_folder / "open.sock"))
    control.listen()
    (open_folder / "open.sock").chmod(0o777)
    try:
        code, out, err = await run(
            *OTHER_USER, python, "-c", CLIENT, str(open_folder / "open.sock")
        )
    finally:
        control.close()
    assert code == 1 and "refused" not in out, err  # connected; then no request was given

    code, out, err = await run(python, "-c", CLIENT, str(socket_proxy), ask)  # the owner
    assert code == 0 and out.startswith("HTTP/1.1 200 "), out + err
    assert json.loads(out.split("\r\n\r\n", 1)[1])["path"] == "/hello"


async def test_the_guest_forward_reaches_the_socket_and_another_user_does_not(
    socket_proxy: Path,
    origins: Origins,  # the fixture imported above
) -> None:
    """The command QEMU runs for each guest connection, run here as QEMU runs it: in the
    socket's folder, the guest's bytes on its stdin and its answer on stdout."""
    socat = shutil.which("socat")
    assert socat is not None, "scripts/setup installs socat"
    forward = shlex.split(qemu.proxy_command(socket_proxy.name, socat))
    ask = request(origins.http_port, "/from-the-guest").encode()

    code, out, err = await run(*forward, stdin=ask, cwd=str(socket_proxy.parent))
    assert code == 0 and out.startswith("HTTP/1.1 200 "), out + err
    assert '"path": "/from-the-guest"' in out

    absolute = shlex.split(qemu.proxy_command(str(socket_proxy), socat))
    code, out, _ = await run(*OTHER_USER, *absolute, stdin=ask)
    assert code != 0 and out == ""


def test_the_proxy_socket_folder_must_be_the_owners(open_folder: Path) -> None:
    """A link or someone else's folder where the socket's folder should be: refused."""
    target = open_folder / "elsewhere"
    target.mkdir()
    (open_folder / "egress").symlink_to(target)
    with pytest.raises(ProxyError, match="not a folder of yours"):
        bind_private(open_folder / "egress" / "proxy.sock")
    assert not (target / "proxy.sock").exists()


# -- `sandkit proxy serve`: TCP, with a per-run token ------------------------------------
KIT = """\
schemaVersion: "2"
kind: mixin
name: api-creds
permissions:
  network:
    allow: [api.test, allowed.test]
credentials:
  - service: apitest
    apiKey:
      name: API_TEST_KEY
      proxyManaged: true
      inject: [{domain: api.test, header: x-api-key, format: "%s"}]
"""


async def test_proxy_serve_serves_only_requests_with_its_token(
    origins: Origins,  # the fixture imported above
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "API_TEST_KEY": "",
    }
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "spec.yaml").write_text(KIT)
    stored = await asyncio.create_subprocess_exec(
        SANDKIT, "secret", "set", "apitest", env=env, stdin=asyncio.subprocess.PIPE
    )
    await stored.communicate(b"the-real-secret")
    assert stored.returncode == 0
    serve = await asyncio.create_subprocess_exec(
        SANDKIT, "proxy", "serve", "--kit", str(kit), "--default", "deny-all",
        "--resolve", "api.test=127.0.0.1", "--resolve", "allowed.test=127.0.0.1",
        "--upstream-ca", str(origins.ca_file), "--log", str(tmp_path / "log.jsonl"),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        line = (await asyncio.wait_for(serve.stdout.readline(), 30)).decode().strip()
        url, ca = line.removeprefix("listening on ").split(" ca=")
        assert url.startswith("http://sandkit:") and "@127.0.0.1:" in url, line
        bare = "http://" + url.rsplit("@", 1)[1]  # the address without the token
        plain = f"http://allowed.test:{origins.http_port}/echo"
        secure = f"https://api.test:{origins.https_port}/v1"
        status = ["-w", "\n%{http_code}:%{http_connect}"]

        # Another user, without the token: 407 for plain HTTP and for CONNECT, in words.
        _, out, _ = await run("curl", "-sS", "-x", bare, *status, plain)
        assert out.endswith("407:000") and "needs its per-run token" in out
        _, out, _ = await run(*OTHER_USER, "curl", "-sS", "-x", bare, *status, plain)
        assert out.endswith("407:000") and "needs its per-run token" in out
        _, out, _ = await run(*OTHER_USER, "curl", "-sS", "-k", "-x", bare, *status, secure)
        assert out.endswith(":407") and "the-real-secret" not in out
        wrong = url.replace(url.split(":")[2].split("@")[0], "not-the-token")
        _, out, _ = await run(*OTHER_USER, "curl", "-sS", "-x", wrong, *status, plain)
        assert out.endswith("407:000")

        # Another user who was given the token may use it; the token goes no further.
        code, out, err = await run(*OTHER_USER, "curl", "-sS", "-x", url, plain)
        assert code == 0, err
        headers = {k.lower() for k in json.loads(out)["headers"]}
        assert "proxy-authorization" not in headers and "host" in headers
        # The owner, with the token: a tunnel to the credential's host, terminated and
        # forwarded as before.
        code, out, err = await run("curl", "-sS", "-x", url, "--cacert", ca, secure)
        assert code == 0, err
        assert json.loads(out)["path"] == "/v1"
    finally:
        serve.send_signal(signal.SIGINT)
        await asyncio.wait_for(serve.communicate(), 10)
    assert serve.returncode == 0


# -- the token check on the proxy itself (any user) ---------------------------------------
@pytest_asyncio.fixture
async def token_proxy(
    origins: Origins,  # the fixture imported above
    tmp_path: Path,
) -> AsyncIterator[tuple[int, TokenAccess, Path]]:
    upstream = ssl.create_default_context(cafile=str(origins.ca_file))
    settings = sandbox_settings(tmp_path)
    settings.policy = Policy([rule("allowed.test"), rule("api.test")], [], DefaultPolicy.DENY_ALL)
    settings.injector = Injector(credentials())
    settings.upstream_tls = upstream
    settings.access = TokenAccess("the-token-of-this-run")
    proxy = EgressProxy(settings)
    _, port = await proxy.start()
    try:
        yield port, settings.access, settings.ca.cert_path
    finally:
        await proxy.aclose()


async def test_a_request_without_the_token_gets_407_in_plain_words(
    token_proxy: tuple[int, TokenAccess, Path],
    origins: Origins,  # the fixture imported above
) -> None:
    port, access, ca = token_proxy
    plain = f"http://allowed.test:{origins.http_port}/x"
    for proxy in (
        f"http://127.0.0.1:{port}",
        f"http://sandkit:wrong@127.0.0.1:{port}",
        f"http://someone:{access.token}@127.0.0.1:{port}",
    ):
        _, out, _ = await curl("-i", "-x", proxy, plain)
        assert out.startswith("HTTP/1.1 407 Proxy Authentication Required"), out
        assert 'Proxy-Authenticate: Basic realm="sandkit"' in out
        assert "needs its per-run token" in out and access.token not in out
    secure = f"https://api.test:{origins.https_port}/v1"
    _, out, _ = await curl("-k", "-x", f"http://127.0.0.1:{port}", "-w", "%{http_connect}", secure)
    assert out.endswith("407") and REAL_SECRET not in out

    url = access.url("127.0.0.1", port)
    code, out, err = await curl("-x", url, "--cacert", str(ca), secure)
    assert code == 0, err
    assert json.loads(out)["path"] == "/v1"


async def test_every_request_on_a_connection_needs_the_token(
    token_proxy: tuple[int, TokenAccess, Path],
    origins: Origins,  # the fixture imported above
) -> None:
    """Keep-alive: a token on the first request does not vouch for the next one."""
    port, access, _ = token_proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    target = f"http://allowed.test:{origins.http_port}/one"
    token = base64.b64encode(f"sandkit:{access.token}".encode()).decode()
    authorized = f"Proxy-Authorization: Basic {token}\r\n"
    writer.write(f"GET {target} HTTP/1.1\r\nHost: allowed.test\r\n{authorized}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    assert b'"path": "/one"' in await reader.readexactly(length)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: allowed.test\r\n\r\n".encode())
    assert (await reader.read()).startswith(b"HTTP/1.1 407 ")
    writer.close()
