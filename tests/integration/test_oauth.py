"""OAuth through the real proxy (issue 16, item 1): a local OAuth server on loopback
(aiohttp, TLS from trustme) with a token endpoint and a resource host, and curl as the
guest. The guest side never holds a real token; the upstream always gets one."""

from __future__ import annotations

import json
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
import trustme
from aiohttp import web

from sandkit.kits.model import Credential, Inject, OAuthSpec
from sandkit.net.actions import DefaultPolicy
from sandkit.net.decisions import DecisionLog
from sandkit.net.guard import Resolver
from sandkit.net.inject import BoundCredential, Injector
from sandkit.net.policy import Policy
from sandkit.net.proxy import EgressProxy, ProxySettings
from sandkit.net.proxy.oauth import OAuthBinding
from sandkit.net.tls import CertificateAuthority
from sandkit.net.tokens import TokenStore
from tests.integration.conftest import ORIGIN, rule
from tests.integration.test_proxy import curl

TOKEN_HOST, RESOURCE_HOST, OTHER_HOST = "auth.oauth.test", "api.oauth.test", "other.oauth.test"
HOSTS = [TOKEN_HOST, RESOURCE_HOST, OTHER_HOST]


@dataclass
class OAuthServer:
    """The upstream: it issues tokens, rotates them on refresh, and records what reached
    it. ``code`` values choose hostile answers for the security tests."""

    port: int = 0
    issued: int = 0
    access: str = ""
    refresh: str = ""
    seen_auth: list[str] = field(default_factory=list)
    seen_refresh: list[str] = field(default_factory=list)

    def mint(self) -> dict[str, object]:
        self.issued += 1
        self.access = f"real-access-token-{self.issued:04d}-9f8e7d6c5b4a"
        self.refresh = f"real-refresh-token-{self.issued:04d}-1a2b3c4d5e6f"
        return {
            "access_token": self.access,
            "refresh_token": self.refresh,
            "expires_in": 3600,
            "token_type": "Bearer",
            "scope": "user:inference",
        }

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        grant, code = form.get("grant_type"), form.get("code")
        if grant == "authorization_code":
            if code == "huge":
                return web.json_response({"access_token": "x" * (2 << 20)})
            if code == "malformed":
                return web.Response(text='{"access_token": "real-', content_type="application/json")
            if code == "html":
                body = json.dumps(self.mint())
                return web.Response(text=body, content_type="text/html")
            if code == "array":
                return web.json_response([self.mint()])
            if code != "good":
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "bad code"}, status=400
                )
            return web.json_response(self.mint())
        if grant == "refresh_token":
            given = str(form.get("refresh_token"))
            self.seen_refresh.append(given)
            if given != self.refresh:
                return web.json_response({"error": "invalid_grant"}, status=400)
            return web.json_response(self.mint())
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def me(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.seen_auth.append(auth)
        # Reflects what it got, as a debugging API might: the proxy must scrub it.
        ok = auth == f"Bearer {self.access}"
        return web.json_response({"ok": ok, "you_sent": auth}, status=200 if ok else 401)


@dataclass
class Setup:
    server: OAuthServer
    url: str  # the proxy
    ca_file: Path  # the proxy's CA, which the guest trusts
    binding: OAuthBinding
    store: TokenStore
    settings: ProxySettings

    def origin(self, host: str, path: str) -> str:
        return f"https://{host}:{self.server.port}{path}"

    async def post_token(self, data: str) -> tuple[int, str, str]:
        return await curl(
            "-i", "--suppress-connect-headers", "-x", self.url, "--cacert", str(self.ca_file), "-d", data,
            self.origin(TOKEN_HOST, "/oauth/token"),
        )  # fmt: skip

    async def get(self, host: str, path: str, token: str) -> tuple[int, str, str]:
        return await curl(
            "-i", "--suppress-connect-headers", "-x", self.url, "--cacert", str(self.ca_file),
            "-H", f"Authorization: Bearer {token}", self.origin(host, path),
        )  # fmt: skip


def spec() -> OAuthSpec:
    return OAuthSpec(
        token_host=TOKEN_HOST,
        token_path="/oauth/token",
        resource_hosts=(RESOURCE_HOST,),
        access_sentinel="sk-ant-oat01-proxy-managed",
        refresh_sentinel="sk-ant-ort01-proxy-managed",
    )


OTHER_API = Credential(
    service="other",
    origin=ORIGIN,
    inject=(Inject(domain=OTHER_HOST, header="X-Api-Key"),),
)


@pytest_asyncio.fixture
async def oauth(tmp_path: Path) -> AsyncIterator[Setup]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*HOSTS).configure_cert(server_ctx)
    server = OAuthServer()
    app = web.Application()
    app.router.add_post("/oauth/token", server.token)
    app.router.add_get("/v1/me", server.me)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    upstream = ssl.create_default_context()
    upstream.load_verify_locations(cadata=ca.cert_pem.bytes().decode())
    store = TokenStore(tmp_path / "config" / "oauth.json")
    binding = OAuthBinding("anthropic", spec(), store.sentinels("sbx1", "anthropic", spec()), store)
    settings = ProxySettings(
        policy=Policy([rule(h) for h in HOSTS], [], DefaultPolicy.DENY_ALL),
        ca=CertificateAuthority.load_or_create(tmp_path / "ca"),
        log=DecisionLog(),
        resolver=Resolver(dict.fromkeys(HOSTS, "127.0.0.1")),
        upstream_tls=upstream,
        sandbox="sbx1",
        oauth=(binding,),
        # An API key for the other host: the proxy terminates TLS there too, so the
        # security tests see what it does with a sentinel it could swap but must not.
        injector=Injector([BoundCredential(OTHER_API, "real-api-key-55aa", "placeholder-x")]),
    )
    proxy = EgressProxy(settings)
    _, port = await proxy.start()
    try:
        yield Setup(
            server, f"http://127.0.0.1:{port}", settings.ca.cert_path, binding, store, settings
        )
    finally:
        await proxy.aclose()
        await runner.cleanup()


def assert_no_real_token(text: str, server: OAuthServer) -> None:
    for n in range(1, server.issued + 1):
        assert f"real-access-token-{n:04d}" not in text
        assert f"real-refresh-token-{n:04d}" not in text


async def sign_in(s: Setup) -> dict[str, object]:
    code, out, err = await s.post_token("grant_type=authorization_code&code=good")
    assert code == 0, err
    assert out.startswith("HTTP/1.1 200"), out
    return dict(json.loads(out.split("\r\n\r\n", 1)[1]))


async def test_authorization_code_grant_gives_the_guest_sentinels_only(oauth: Setup) -> None:
    body = await sign_in(oauth)
    sentinels = oauth.binding.sentinels
    assert body["access_token"] == sentinels.access
    assert body["refresh_token"] == sentinels.refresh
    assert body["expires_in"] == 3600 and body["scope"] == "user:inference"
    assert body["token_type"] == "Bearer"  # fields sandkit does not know pass as they are
    assert sentinels.access.startswith("sk-ant-oat01-proxy-managed-")
    stored = oauth.store.get("anthropic", "sbx1")
    assert stored is not None
    assert stored.access == oauth.server.access and stored.refresh == oauth.server.refresh
    assert stored.expires_at is not None and stored.scope == "user:inference"
    assert stat.S_IMODE(oauth.store.path.stat().st_mode) == 0o600
    # Signed in for the next sandbox too: global scope.
    assert oauth.store.get("anthropic", "another") == stored


async def test_a_resource_request_with_the_sentinel_arrives_with_the_real_token(
    oauth: Setup,
) -> None:
    await sign_in(oauth)
    code, out, err = await oauth.get(RESOURCE_HOST, "/v1/me", oauth.binding.sentinels.access)
    assert code == 0, err
    assert out.startswith("HTTP/1.1 200"), out
    assert oauth.server.seen_auth == [f"Bearer {oauth.server.access}"]
    # The reflecting upstream echoed the real token: the guest got the sentinel back.
    assert oauth.binding.sentinels.access in out
    assert_no_real_token(out, oauth.server)


async def test_a_refresh_by_the_guest_rotates_the_stored_token(oauth: Setup) -> None:
    await sign_in(oauth)
    first = oauth.store.get("anthropic", "sbx1")
    assert first is not None
    code, out, err = await oauth.post_token(
        f"grant_type=refresh_token&refresh_token={oauth.binding.sentinels.refresh}"
    )
    assert code == 0, err
    assert out.startswith("HTTP/1.1 200"), out
    assert oauth.server.seen_refresh == [first.refresh]  # forwarded with the real one
    body = json.loads(out.split("\r\n\r\n", 1)[1])
    assert body["access_token"] == oauth.binding.sentinels.access  # same sentinels
    assert body["refresh_token"] == oauth.binding.sentinels.refresh
    second = oauth.store.get("anthropic", "sbx1")
    assert second is not None and second != first
    assert second.access == oauth.server.access and second.refresh == oauth.server.refresh
    assert_no_real_token(out, oauth.server)
    # The next resource request carries the rotated token.
    code, out, _ = await oauth.get(RESOURCE_HOST, "/v1/me", oauth.binding.sentinels.access)
    assert out.startswith("HTTP/1.1 200"), out
    assert oauth.server.seen_auth[-1] == f"Bearer {second.access}"


async def test_an_error_answer_passes_untouched(oauth: Setup) -> None:
    code, out, err = await oauth.post_token("grant_type=authorization_code&code=wrong")
    assert code == 0, err
    assert out.startswith("HTTP/1.1 400"), out
    body = out.split("\r\n\r\n", 1)[1]
    assert json.loads(body) == {"error": "invalid_grant", "error_description": "bad code"}
    assert oauth.store.get("anthropic", "sbx1") is None
    # A refresh with a refresh token the host does not hold: the upstream's 400 as is.
    code, out, _ = await oauth.post_token("grant_type=refresh_token&refresh_token=guess")
    assert out.startswith("HTTP/1.1 400"), out
    assert json.loads(out.split("\r\n\r\n", 1)[1]) == {"error": "invalid_grant"}
    assert oauth.server.seen_refresh == ["guess"]


async def test_no_response_byte_holds_a_real_token_across_a_whole_session(
    oauth: Setup,
) -> None:
    seen = []
    for _ in range(2):
        seen.append((await oauth.post_token("grant_type=authorization_code&code=good"))[1])
        seen.append((await oauth.get(RESOURCE_HOST, "/v1/me", oauth.binding.sentinels.access))[1])
        refresh = f"grant_type=refresh_token&refresh_token={oauth.binding.sentinels.refresh}"
        seen.append((await oauth.post_token(refresh))[1])
    assert oauth.server.issued == 4
    assert_no_real_token("\n".join(seen), oauth.server)


@pytest.mark.parametrize("sandbox", ["sbx1", "sbx2"])
def test_sentinels_are_per_sandbox_and_stable(tmp_path: Path, sandbox: str) -> None:
    store = TokenStore(tmp_path / "oauth.json")
    first = store.sentinels(sandbox, "anthropic", spec())
    assert store.sentinels(sandbox, "anthropic", spec()) == first  # a restart: the same
    other = store.sentinels(sandbox + "-other", "anthropic", spec())
    assert other.access != first.access and other.refresh != first.refresh


def test_a_removed_sandbox_forgets_its_own_sign_in_and_sentinels(tmp_path: Path) -> None:
    from sandkit.net.oauth import Tokens
    from sandkit.net.tokens import scope_of

    store = TokenStore(tmp_path / "oauth.json")
    mine = store.sentinels("gone", "anthropic", spec())
    store.put("anthropic", Tokens("sandbox-own-token-1234"), scope_of("gone"))
    store.put("anthropic", Tokens("global-token-5678"))
    store.forget_sandbox("gone")
    assert store.get("anthropic", "gone") == Tokens("global-token-5678")
    assert store.sentinels("gone", "anthropic", spec()) != mine  # made anew
    TokenStore(tmp_path / "absent.json").forget_sandbox("x")
    assert not (tmp_path / "absent.json").exists()
