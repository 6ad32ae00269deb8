"""Docker's registry flow through the real proxy, without a VM: a real registry (Debian's
docker-registry, TLS with its own CA, htpasswd logins) on 127.0.0.1, reached by the name
`registry.test` pinned as `--resolve` does, the proxy built from a kit as a sandbox's is.
Docker first sends GET /v2/ and wants 200 (or 401 to log in): the proxy's injected Basic
login makes it 200 with no `docker login` in the guest."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from sandkit.net.actions import DefaultPolicy
from sandkit.net.decisions import Decision, read_log
from sandkit.net.proxy import EgressProxy
from sandkit.net.secrets import SecretStore
from sandkit.net.service import build_settings, merged_kits
from tests.registry import SERVICE, Registry, running_registry, write_kit

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@dataclass
class Proxied:
    url: str
    ca_file: Path  # the sandbox CA: what the guest trusts for intercepted hosts
    log_path: Path
    proxy: EgressProxy

    def records(self) -> list[Decision]:
        self.proxy.s.log.flush()
        return read_log(self.log_path) if self.log_path.exists() else []

    def requests(self) -> list[Decision]:
        """The requests inside intercepted tunnels (not the CONNECTs that opened them)."""
        return [r for r in self.records() if r.scheme == "https" and r.method != "CONNECT"]


@contextlib.asynccontextmanager
async def proxy_for(
    registry: Registry, home: Path, *, allow: bool = True, login: bool = True
) -> AsyncIterator[Proxied]:
    """A proxy from the registry kit (``allow``: with it; else no kit at all), the
    registry's password in the secret store when ``login``."""
    store = SecretStore(home / "secrets.json")
    if login:
        store.set(SERVICE, registry.password)
    content, _ = merged_kits([str(write_kit(home / "kit", registry.host))] if allow else [])
    settings, _ = build_settings(
        content,
        default=DefaultPolicy.DENY_ALL,
        log_path=home / "decisions.jsonl",
        pins={registry.host: "127.0.0.1"},
        upstream_ca=registry.ca_file,
        sandbox="registry",
        ca_dir=home / "ca",
        store=store,
        environ={},
    )
    proxy = EgressProxy(settings)
    _, port = await proxy.start()
    try:
        yield Proxied(
            f"http://127.0.0.1:{port}", settings.ca.cert_path, home / "decisions.jsonl", proxy
        )
    finally:
        await proxy.aclose()


def trusting(*cas: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    for ca in cas:
        ctx.load_verify_locations(cafile=str(ca))
    return ctx


async def decisions_about(proxied: Proxied, host: str, mark: int, count: int) -> list[Decision]:
    """``count`` decisions about ``host`` after ``mark`` records: a tunnel is logged when
    it ends, which can be just after the client has its answer."""
    for _ in range(500):
        found = [r for r in proxied.records()[mark:] if r.host == host]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} decisions about {host}: {proxied.records()[mark:]}")


async def test_v2_answers_200_only_with_the_injected_login(
    registry: Registry, tmp_path: Path
) -> None:
    url = f"https://{registry.address}/v2/"
    async with proxy_for(registry, tmp_path / "with") as proxied:
        ctx = trusting(proxied.ca_file)
        async with aiohttp.ClientSession() as http:
            async with http.get(url, proxy=proxied.url, ssl=ctx) as got:
                assert got.status == 200, await got.text()
                assert await got.json() == {}
            # A login the guest made up (or a stale `docker login`) is replaced, not added to.
            wrong = base64.b64encode(f"{registry.user}:not-the-password".encode()).decode()
            headers = {"Authorization": f"Basic {wrong}"}
            async with http.get(url, proxy=proxied.url, ssl=ctx, headers=headers) as got:
                assert got.status == 200
        await decisions_about(proxied, registry.host, 0, 3)
        inside = proxied.requests()
        assert [(r.method, r.path, r.status) for r in inside] == [
            ("GET", "/v2/", 200),
            ("GET", "/v2/", 200),
        ]
        assert all(r.credentials == [SERVICE] and r.rule == registry.host for r in inside)
        assert registry.password not in proxied.log_path.read_text()

    # The same registry, allowed, with no password on the host: the request goes through
    # untouched and the registry asks for a login, as Docker expects from /v2/.
    async with proxy_for(registry, tmp_path / "without", login=False) as proxied:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, proxy=proxied.url, ssl=trusting(proxied.ca_file)) as got,
        ):
            assert got.status == 401
            assert got.headers["WWW-Authenticate"] == 'Basic realm="sandkit-test"'
        (record,) = proxied.requests()
        assert record.credentials == [] and record.status == 401
        assert any(f"run `sandkit secret set {SERVICE}`" in w for w in record.warnings)


async def test_push_and_pull_a_blob_and_manifest(registry: Registry, tmp_path: Path) -> None:
    """Docker's push (upload session, Location to follow, PUT with the digest, manifest)
    and pull, every request inside the intercepted tunnel with the login injected."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    layer = bytes(range(256)) * 4096  # 1 MiB: a body bigger than one read
    base = f"https://{registry.address}/v2/sandkit/tiny"
    async with proxy_for(registry, tmp_path) as proxied, aiohttp.ClientSession() as http:
        ctx = trusting(proxied.ca_file)

        async def push_blob(data: bytes) -> str:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            async with http.post(f"{base}/blobs/uploads/", proxy=proxied.url, ssl=ctx) as got:
                assert got.status == 202, await got.text()
                location = got.headers["Location"]
            # The registry's absolute Location names the host the client asked for.
            assert location.startswith(f"https://{registry.address}/v2/sandkit/tiny/blobs/")
            sep = "&" if "?" in location else "?"
            async with http.put(
                f"{location}{sep}digest={digest}", data=data, proxy=proxied.url, ssl=ctx
            ) as got:
                assert got.status == 201, await got.text()
            return digest

        config_digest = await push_blob(config)
        layer_digest = await push_blob(layer)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_V2,
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "size": len(config),
                    "digest": config_digest,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(layer),
                        "digest": layer_digest,
                    }
                ],
            }
        ).encode()
        async with http.put(
            f"{base}/manifests/v1",
            data=manifest,
            headers={"Content-Type": MANIFEST_V2},
            proxy=proxied.url,
            ssl=ctx,
        ) as got:
            assert got.status == 201, await got.text()

        async with http.get(
            f"{base}/manifests/v1", headers={"Accept": MANIFEST_V2}, proxy=proxied.url, ssl=ctx
        ) as got:
            assert got.status == 200 and await got.read() == manifest
        async with http.get(f"{base}/blobs/{layer_digest}", proxy=proxied.url, ssl=ctx) as got:
            assert got.status == 200 and await got.read() == layer

        records = proxied.requests()
        assert [(r.method, r.status) for r in records] == [
            ("POST", 202),
            ("PUT", 201),
            ("POST", 202),
            ("PUT", 201),
            ("PUT", 201),
            ("GET", 200),
            ("GET", 200),
        ]
        assert all(r.credentials == [SERVICE] for r in records)
        assert records[3].bytes_up >= len(layer) and records[-1].bytes_down >= len(layer)


async def test_registry_not_allowed_is_refused_with_its_reason(
    registry: Registry, tmp_path: Path
) -> None:
    """No kit allows the registry: the CONNECT gets a 403 whose status line says why
    (Docker shows a refused CONNECT's reason phrase, never its body), logged as blocked."""
    async with proxy_for(registry, tmp_path, allow=False) as proxied:
        port = int(proxied.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"CONNECT {registry.address} HTTP/1.1\r\nHost: {registry.address}\r\n\r\n".encode()
        )
        await writer.drain()
        answer = (await reader.read()).decode()
        writer.close()
        status, _, rest = answer.partition("\r\n")
        assert status == (
            f"HTTP/1.1 403 Forbidden (Blocked by sandkit network policy: {registry.address} "
            "Reason: no rule allows this host and the default policy is 'deny-all'. "
            f"To allow it: a person can add '{registry.host}' to permissions.network.allow "
            "in a kit, or approve the request when sandkit asks.)"
        )
        assert "X-Sandkit-Blocked: default-deny" in rest
        assert f"Blocked by sandkit network policy: {registry.address}" in rest

        (record,) = await decisions_about(proxied, registry.host, 0, 1)
        assert (record.method, record.action, record.reason, record.status) == (
            "CONNECT",
            "blocked",
            "default-deny",
            403,
        )
        assert record.port == registry.port and record.credentials == []
