"""Real servers on loopback for the proxy tests: an upstream origin over HTTP and over
HTTPS (certificates from a throw-away CA made with trustme), and the proxy in process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme
from aiohttp import WSMsgType, web

from sandkit.kits.model import Credential, Inject, NetworkRule, Origin
from sandkit.net.actions import DefaultPolicy
from sandkit.net.decisions import Decision, DecisionLog, read_log
from sandkit.net.guard import Resolver
from sandkit.net.inject import BoundCredential, Injector
from sandkit.net.policy import Policy
from sandkit.net.proxy import EgressProxy, ProxySettings
from sandkit.net.tls import CertificateAuthority

ORIGIN = Origin(kit="test-kit", file="/kits/test/spec.yaml", line=7, column=9)
HOSTS = ["api.test", "other.test", "allowed.test", "denied.test", "ask.test", "b.test"]
REAL_SECRET = "real-secret-value-4f1c9a"
OTHER_SECRET = "other-secret-value-77ab"


def rule(pattern: str) -> NetworkRule:
    return NetworkRule(pattern=pattern, origin=ORIGIN)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path_qs,
            "headers": dict(request.headers),
            "body_len": len(body),
            "body_sha": hashlib.sha256(body).hexdigest(),
            "peer": request.transport.get_extra_info("peername")[1] if request.transport else None,
        }
    )


async def big(request: web.Request) -> web.StreamResponse:
    size = int(request.query.get("size", str(1 << 20)))
    response = web.StreamResponse()
    if request.query.get("chunked") != "1":
        response.content_length = size
    await response.prepare(request)
    block = bytes(range(256)) * 256
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        await response.write(piece)
        sent += len(piece)
    await response.write_eof()
    return response


async def upload(request: web.Request) -> web.Response:
    digest, total = hashlib.sha256(), 0
    async for piece in request.content.iter_any():
        digest.update(piece)
        total += len(piece)
    return web.json_response({"len": total, "sha": digest.hexdigest()})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str("echo:" + msg.data)
    return ws


def origin_app() -> web.Application:
    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/big", big)
    app.router.add_post("/upload", upload)
    app.router.add_get("/ws", websocket)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@dataclass
class Origins:
    http_port: int
    https_port: int
    ca: trustme.CA
    ca_file: Path


@pytest.fixture(scope="session")
def trust_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("trust") / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest_asyncio.fixture(scope="session")
async def origins(trust_ca: tuple[trustme.CA, Path]) -> AsyncIterator[Origins]:
    ca, ca_file = trust_ca
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*HOSTS, "127.0.0.1", "localhost").configure_cert(server_ctx)
    runner = web.AppRunner(origin_app(), access_log=None)
    await runner.setup()
    plain = web.TCPSite(runner, "127.0.0.1", 0)
    secure = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await plain.start()
    await secure.start()
    ports = [s._server.sockets[0].getsockname()[1] for s in (plain, secure)]  # type: ignore[union-attr]
    yield Origins(ports[0], ports[1], ca, ca_file)
    await runner.cleanup()


@dataclass
class RunningProxy:
    proxy: EgressProxy
    settings: ProxySettings
    port: int
    url: str
    ca_file: Path
    placeholders: dict[str, str]
    log_path: Path

    def records(self) -> list[Decision]:
        self.settings.log.flush()
        return read_log(self.log_path)

    async def decision(self, host: str, mark: int, timeout: float = 10.0) -> Decision:
        """The latest decision about `host` logged after `mark` records.

        A tunnel or a streamed body is logged when the connection ends, which can be
        just after the client has its answer, so wait for it rather than read once.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = [r for r in self.records()[mark:] if r.host == host]
            if found:
                return found[-1]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no decision about {host} logged within {timeout} s")
            await asyncio.sleep(0.02)


def credentials() -> list[BoundCredential]:
    api = Credential(
        service="api",
        env="API_KEY",
        proxy_managed=True,
        origin=ORIGIN,
        inject=(Inject(domain="api.test", header="Authorization", format="Bearer %s"),),
    )
    other = Credential(
        service="bsvc",
        env="B_KEY",
        proxy_managed=True,
        origin=ORIGIN,
        inject=(Inject(domain="b.test", header="X-Key"),),
    )
    return [
        BoundCredential(api, REAL_SECRET, "sandkit-placeholder-api-0001"),
        BoundCredential(other, OTHER_SECRET, "sandkit-placeholder-bsvc-0002"),
    ]


@pytest_asyncio.fixture(scope="session")
async def proxy(
    origins: Origins, trust_ca: tuple[trustme.CA, Path], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningProxy]:
    home = tmp_path_factory.mktemp("proxy")
    upstream = ssl.create_default_context()
    upstream.load_verify_locations(cafile=str(trust_ca[1]))
    bound = credentials()
    settings = ProxySettings(
        policy=Policy(
            [
                rule("api.test"),
                rule("other.test"),
                rule("allowed.test"),
                rule("b.test"),
                rule("localhost"),
                rule("**.wild.test"),
            ],
            [rule("denied.test")],
            DefaultPolicy.DENY_ALL,
        ),
        ca=CertificateAuthority.load_or_create(home / "ca"),
        injector=Injector(bound),
        log=DecisionLog(home / "decisions.jsonl"),
        resolver=Resolver(dict.fromkeys(HOSTS, "127.0.0.1")),
        upstream_tls=upstream,
        sandbox="test",
    )
    running = EgressProxy(settings)
    _, port = await running.start()
    yield RunningProxy(
        running,
        settings,
        port,
        f"http://127.0.0.1:{port}",
        settings.ca.cert_path,
        {b.service: b.placeholder for b in bound},
        home / "decisions.jsonl",
    )
    await running.aclose()  # closes its log and CA too


@contextlib.asynccontextmanager
async def one_off_proxy(
    policy: Policy, home: Path, pins: dict[str, str] | None = None, **options: Any
) -> AsyncIterator[str]:
    """A proxy with its own policy (and other ProxySettings) for one test; yields its URL."""
    settings = ProxySettings(
        policy=policy,
        ca=CertificateAuthority.load_or_create(home / "ca"),
        log=DecisionLog(),
        resolver=Resolver(pins),
        **options,
    )
    running = EgressProxy(settings)
    _, port = await running.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await running.aclose()
