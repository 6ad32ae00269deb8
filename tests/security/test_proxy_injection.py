"""The real secret never comes back, and never goes where its credential does not name
(security invariants 3 and 8; issue 14, items 1 and 2).

Against the real proxy on loopback, with real TLS origins (trustme) that behave badly:
one reflects what it received (CORS echoing Origin, debug headers, the status line, a JSON
body of every header), one answers with the secret itself (in a cookie, in a body cut into
one-byte chunks, gzip-compressed against the client's wishes, in an encoding the proxy
cannot read, by byte ranges), and every origin records what reached it, so a test can say
what went upstream as well as what came back."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import trustme
from aiohttp import web

from sandkit.kits.model import Credential, Inject
from sandkit.net.actions import DefaultPolicy
from sandkit.net.decisions import Decision, DecisionLog
from sandkit.net.guard import Resolver
from sandkit.net.inject import BoundCredential, Injector
from sandkit.net.policy import Policy
from sandkit.net.proxy import EgressProxy, ProxySettings
from sandkit.net.tls import CertificateAuthority
from tests.integration.conftest import ORIGIN, RunningProxy, rule
from tests.integration.test_proxy import curl

SECRET = "real-secret-4f1c9a-do-not-leak"
B_SECRET = "b-secret-77ab-do-not-leak"
BASIC_SECRET = "basic-pw-31c"
PH = "sandkit-placeholder-api-0123456789abcdef0123456789abcdef"
B_PH = "sandkit-placeholder-bsvc-0123456789abcdef0123456789abcdef"
HOSTS = ["api.test", "b.test", "reg.test", "nl.test", "nul.test", "evil.test", "plain.test"]
# Names for tests/security/test_proxy_matching.py, which uses these origins too.
MORE_HOSTS = ["paths.test", "reads.test", "alias.test"]
EVERY_SECRET = (SECRET, B_SECRET, BASIC_SECRET)


# -- origins ----------------------------------------------------------------------------
GATES: dict[str, asyncio.Event] = {}  # /events?gate=NAME waits on GATES[NAME]


@dataclass
class Seen:
    """One request as an origin received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class Origins:
    https_port: int
    http_port: int
    ca_file: Path
    seen: list[Seen] = field(default_factory=list)

    def mark(self) -> int:
        return len(self.seen)

    def since(self, mark: int) -> list[Seen]:
        return self.seen[mark:]


def origin_app(seen: list[Seen]) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: object) -> web.StreamResponse:
        seen.append(
            Seen(
                request.method,
                request.raw_path,
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            )
        )
        assert callable(handler)
        response = await handler(request)
        assert isinstance(response, web.StreamResponse)
        return response

    async def reflect(request: web.Request) -> web.StreamResponse:
        """What a CORS server or a debug endpoint does: echo the request back."""
        h = request.headers
        echo = dict(h.items())
        response = web.StreamResponse(
            reason=f"OK {h.get('Authorization', '')}"[:200],
            headers={
                "Access-Control-Allow-Origin": h.get("Origin", "*"),
                "X-Echo-Authorization": h.get("Authorization", ""),
                "X-Echo-Key": h.get("X-Key", ""),
                "X-Echo-Referer": h.get("Referer", ""),
                "Content-Type": "application/json",
            },
        )
        await response.prepare(request)
        body = json.dumps({"target": request.raw_path, "headers": echo}).encode()
        step = int(request.query.get("step", "0")) or len(body)
        for at in range(0, len(body), step):  # step=1: one chunk per byte
            await response.write(body[at : at + step])
        await response.write_eof()
        return response

    async def secret(request: web.Request) -> web.StreamResponse:
        """An origin that knows the secret and says it: in a cookie and in the body."""
        body = f'{{"key": "{SECRET}", "also": "{SECRET}"}}'.encode()
        encoding = request.query.get("encoding")
        headers = {"Set-Cookie": f"session={SECRET}; Secure", "Content-Type": "text/plain"}
        if encoding == "gzip":  # whatever the client asked for
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        elif encoding == "br":  # not really brotli: the proxy cannot tell, so must refuse
            headers["Content-Encoding"] = "br"
        status = 200
        wanted = request.headers.get("Range", "")
        if wanted.startswith("bytes="):  # honour one byte range, as a static server does
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            body, status = body[int(first) : int(last) + 1], 206
        response = web.StreamResponse(status=status, headers=headers)
        if request.query.get("length") == "1":
            response.content_length = len(body)
        await response.prepare(request)
        step = int(request.query.get("step", "0")) or len(body)
        for at in range(0, len(body), step):
            await response.write(body[at : at + step])
        await response.write_eof()
        return response

    async def events(request: web.Request) -> web.StreamResponse:
        """A model's streamed reply (SSE): the second event waits for the test's go."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f'data: {{"echo": "{SECRET}"}}\n\n'.encode())
        await GATES[request.query["gate"]].wait()
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application(middlewares=[record])
    app.router.add_route("*", "/events", events)
    app.router.add_route("*", "/reflect", reflect)
    app.router.add_route("*", "/secret", secret)
    app.router.add_route("*", "/{tail:.*}", reflect)
    return app


@pytest_asyncio.fixture(scope="module")
async def bad_origins(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Origins]:
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("origin-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*HOSTS, *MORE_HOSTS, "127.0.0.1").configure_cert(server_ctx)
    seen: list[Seen] = []
    runner = web.AppRunner(origin_app(seen), access_log=None)
    await runner.setup()
    secure = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    plain = web.TCPSite(runner, "127.0.0.1", 0)
    await secure.start()
    await plain.start()
    ports = [s._server.sockets[0].getsockname()[1] for s in (secure, plain)]  # type: ignore[union-attr]
    yield Origins(ports[0], ports[1], ca_file, seen)
    await runner.cleanup()


# -- the proxy --------------------------------------------------------------------------
def credential(service: str, *injects: Inject) -> Credential:
    return Credential(service=service, env="K", proxy_managed=True, origin=ORIGIN, inject=injects)


BOUND = [
    BoundCredential(
        credential("api", Inject(domain="api.test", header="Authorization", format="Bearer %s")),
        SECRET,
        PH,
    ),
    BoundCredential(credential("bsvc", Inject(domain="b.test", header="X-Key")), B_SECRET, B_PH),
    BoundCredential(
        credential(
            "reg",
            Inject(
                domain="reg.test", header="Authorization", format="Basic %s", basic_username="u"
            ),
        ),
        BASIC_SECRET,
        "sandkit-placeholder-reg-0",
    ),
    # Values a header cannot carry: a multi-line file, a NUL.
    BoundCredential(
        credential("nl", Inject(domain="nl.test", header="X-K")),
        "line1\r\nX-Injected: yes\r\n\r\nGET /smuggled HTTP/1.1",
        "sandkit-placeholder-nl-0",
    ),
    BoundCredential(
        credential("nul", Inject(domain="nul.test", header="X-K")), "ab\x00cd", "sandkit-ph-nul"
    ),
]


@pytest_asyncio.fixture(scope="module")
async def proxy(
    bad_origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningProxy]:
    home = tmp_path_factory.mktemp("injecting-proxy")
    upstream = ssl.create_default_context(cafile=str(bad_origins.ca_file))
    settings = ProxySettings(
        policy=Policy([rule(h) for h in HOSTS], [], DefaultPolicy.DENY_ALL),
        ca=CertificateAuthority.load_or_create(home / "ca"),
        injector=Injector(BOUND),
        log=DecisionLog(home / "decisions.jsonl"),
        resolver=Resolver(dict.fromkeys(HOSTS, "127.0.0.1")),
        upstream_tls=upstream,
        sandbox="security",
    )
    running = EgressProxy(settings)
    _, port = await running.start()
    yield RunningProxy(
        running,
        settings,
        port,
        f"http://127.0.0.1:{port}",
        settings.ca.cert_path,
        {b.service: b.placeholder for b in BOUND},
        home / "decisions.jsonl",
    )
    await running.aclose()


async def through(proxy: RunningProxy, url: str, *args: str) -> str:
    """The whole answer as the client sees it (status line, headers, body)."""
    code, out, err = await curl("-i", "-x", proxy.url, "--cacert", str(proxy.ca_file), *args, url)
    assert code == 0, err
    return out.removeprefix("HTTP/1.1 200 Connection Established\r\n\r\n")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in EVERY_SECRET:
            assert secret not in text
        assert "YmFzaWMtcHctMzFj" not in text  # nor base64 of any part of it


async def decision(proxy: RunningProxy, mark: int, host: str) -> Decision:
    return await proxy.decision(host, mark)


# -- injection: only the named header ---------------------------------------------------
async def test_a_reflected_placeholder_never_comes_back_as_the_secret(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    mark, seen = len(proxy.records()), bad_origins.mark()
    out = await through(
        proxy,
        f"https://api.test:{bad_origins.https_port}/reflect?key={PH}",
        "-H",
        f"Authorization: Bearer {PH}",
        "-H",
        f"Origin: {PH}",
        "-H",
        f"Referer: https://app.test/?k={PH}",
        "-H",
        f"Cookie: session={PH}",
        "-H",
        f"X-Api-Key: {PH}",
    )
    assert_no_secret(out)
    assert f"Access-Control-Allow-Origin: {PH}" in out  # the CORS echo is harmless now
    assert f"X-Echo-Authorization: Bearer {PH}" in out  # the injected value, scrubbed
    assert out.startswith(f"HTTP/1.1 200 OK Bearer {PH}")  # …in the status line too
    # Upstream: the secret in Authorization alone; every other placeholder untouched.
    (request,) = bad_origins.since(seen)
    assert request.get("Authorization") == [f"Bearer {SECRET}"]
    assert request.get("Origin") == [PH]
    assert request.get("Referer") == [f"https://app.test/?k={PH}"]
    assert request.get("Cookie") == [f"session={PH}"]
    assert request.get("X-Api-Key") == [PH]
    assert request.target == f"/reflect?key={PH}"
    warnings = (await decision(proxy, mark, "api.test")).warnings
    for name in ("Origin", "Referer", "Cookie", "X-Api-Key"):
        assert (
            f"placeholder for 'api' in header {name} to api.test: only Authorization carries "
            "the credential; left as is"
        ) in warnings
    assert "placeholder for 'api' in the URL to api.test; left as is" in warnings
    for where in ("header X-Echo-Authorization", "the status line", "its body"):
        assert (
            f"the response from api.test carried the real secret of 'api' in {where}; "
            "replaced by its placeholder"
        ) in warnings
    assert_no_secret(proxy.log_path.read_text())


async def test_a_placeholder_for_another_credential_is_never_replaced(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    # b.test is intercepted for its own credential; api's placeholder rides along.
    seen = bad_origins.mark()
    out = await through(
        proxy,
        f"https://b.test:{bad_origins.https_port}/reflect",
        "-H",
        f"Origin: {PH}",
        "-H",
        f"Authorization: Bearer {PH}",
    )
    assert_no_secret(out)
    (request,) = bad_origins.since(seen)
    assert request.get("Origin") == [PH] and request.get("Authorization") == [f"Bearer {PH}"]
    assert request.get("X-Key") == [B_SECRET]
    assert f"X-Echo-Key: {B_PH}" in out


async def test_the_basic_auth_token_is_scrubbed_too(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    # base64("u:secret") is the secret one decode away.
    seen = bad_origins.mark()
    out = await through(proxy, f"https://reg.test:{bad_origins.https_port}/reflect")
    (request,) = bad_origins.since(seen)
    assert request.get("Authorization") == ["Basic dTpiYXNpYy1wdy0zMWM="]
    assert "dTpiYXNpYy1wdy0zMWM=" not in out
    assert "X-Echo-Authorization: Basic sandkit-placeholder-reg-0" in out


@pytest.mark.parametrize("host", ["nl.test", "nul.test"])
async def test_a_value_a_header_cannot_carry_is_never_sent(
    proxy: RunningProxy, bad_origins: Origins, host: str
) -> None:
    mark, seen = len(proxy.records()), bad_origins.mark()
    await through(proxy, f"https://{host}:{bad_origins.https_port}/reflect")
    requests = bad_origins.since(seen)
    assert [r.target for r in requests] == ["/reflect"]  # nothing smuggled after it
    assert requests[0].get("X-K") == [] and requests[0].get("X-Injected") == []
    record = await decision(proxy, mark, host)
    assert record.credentials == []
    assert any("nothing injected into X-K" in w for w in record.warnings)


# -- scrubbing: what the origin says ----------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "",  # one piece
        "step=1",  # one byte per chunk: the secret is cut at every boundary
        "step=7",
        "length=1",  # Content-Length framing: the body changes length, so goes back chunked
        "encoding=gzip",  # compressed although the proxy asked for identity
        "encoding=gzip&step=3",
    ],
)
async def test_a_secret_in_the_response_is_replaced(
    proxy: RunningProxy, bad_origins: Origins, query: str
) -> None:
    mark, seen = len(proxy.records()), bad_origins.mark()
    out = await through(proxy, f"https://api.test:{bad_origins.https_port}/secret?{query}")
    assert_no_secret(out)
    head, _, body = out.partition("\r\n\r\n")
    assert f"Set-Cookie: session={PH}; Secure" in head
    assert json.loads(body) == {"key": PH, "also": PH}
    (request,) = bad_origins.since(seen)
    assert request.get("Accept-Encoding") == ["identity"]
    warnings = (await decision(proxy, mark, "api.test")).warnings
    assert (
        "the response from api.test carried the real secret of 'api' in its body; "
        "replaced by its placeholder"
    ) in warnings
    assert any("in header Set-Cookie" in w for w in warnings)


async def test_a_streamed_reply_is_scrubbed_event_by_event(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    # The first event must reach the client, scrubbed, while the origin still holds the
    # second one back: scrubbing may not buffer a stream until it ends.
    gate = GATES["sse"] = asyncio.Event()
    ctx = ssl.create_default_context(cafile=str(proxy.ca_file))
    url = f"https://api.test:{bad_origins.https_port}/events?gate=sse"
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, proxy=proxy.url, ssl=ctx) as response,
        ):
            first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 30)
            gate.set()
            rest = await asyncio.wait_for(response.content.read(), 30)
    finally:
        gate.set()  # never leave the origin's handler waiting
    assert first == f'data: {{"echo": "{PH}"}}\n\n'.encode()
    assert rest == b"data: [DONE]\n\n"


async def test_a_body_the_proxy_cannot_read_is_refused(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    mark = len(proxy.records())
    out = await through(proxy, f"https://api.test:{bad_origins.https_port}/secret?encoding=br")
    assert_no_secret(out)
    assert out.startswith("HTTP/1.1 502")
    assert "Content-Encoding 'br', which sandkit cannot read" in out
    record = await decision(proxy, mark, "api.test")
    assert record.status == 502 and any("cannot read" in w for w in record.warnings)


async def test_byte_ranges_cannot_hand_out_the_secret_piece_by_piece(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    seen = bad_origins.mark()
    pieces = []
    for first, last in [(0, 14), (15, 29), (30, 200)]:
        out = await through(
            proxy,
            f"https://api.test:{bad_origins.https_port}/secret",
            "-H",
            f"Range: bytes={first}-{last}",
        )
        assert out.startswith("HTTP/1.1 200")  # the range never reached the origin
        pieces.append(out.partition("\r\n\r\n")[2])
    assert_no_secret("".join(pieces))
    assert all(r.get("Range") == [] for r in bad_origins.since(seen))


# -- tunnel identity --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["-H", "Host: evil.test"], "Host header"),
        (["-H", "Host: EVIL.test."], "Host header"),
        (["-H", "Host: api.test:1"], "Host header"),
        (["-H", "Host: api.test.evil.test"], "Host header"),
        (["--request-target", "https://evil.test/reflect"], "request URL"),
        (["--request-target", "http://evil.test/reflect"], "request URL"),
        (["--request-target", "https://api.test:1/reflect"], "request URL"),
    ],
)
async def test_a_request_for_another_host_inside_a_tunnel_is_refused(
    proxy: RunningProxy, bad_origins: Origins, args: list[str], where: str
) -> None:
    mark, seen = len(proxy.records()), bad_origins.mark()
    out = await through(
        proxy,
        f"https://api.test:{bad_origins.https_port}/reflect",
        "-H",
        f"Authorization: Bearer {PH}",
        *args,
    )
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 403")
    assert "X-Sandkit-Blocked: host-mismatch" in head
    assert f"tunnel to api.test:{bad_origins.https_port}" in body and f"in its {where}" in body
    assert "make a separate request" in body
    assert bad_origins.since(seen) == []  # nothing reached any origin
    record = await decision(proxy, mark, "api.test")
    assert (record.action, record.reason, record.status) == ("blocked", "host-mismatch", 403)
    assert record.credentials == []


@pytest.mark.parametrize(
    "args",
    [
        ["-H", "Host: API.Test"],
        ["--request-target", "/reflect"],
        ["--request-target", "https://api.test:{port}/reflect?x=1"],
    ],
)
async def test_a_request_that_names_the_tunnel_host_goes_through(
    proxy: RunningProxy, bad_origins: Origins, args: list[str]
) -> None:
    seen = bad_origins.mark()
    args = [a.format(port=bad_origins.https_port) for a in args]
    out = await through(proxy, f"https://api.test:{bad_origins.https_port}/reflect", *args)
    assert out.startswith("HTTP/1.1 200")
    (request,) = bad_origins.since(seen)
    assert request.target.startswith("/reflect")  # origin-form upstream, always
    assert request.get("Authorization") == [f"Bearer {SECRET}"]
    assert f"X-Echo-Authorization: Bearer {PH}" in out
    assert_no_secret(out)


async def test_user_information_in_a_tunnelled_url_is_refused(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    seen = bad_origins.mark()
    out = await through(
        proxy,
        f"https://api.test:{bad_origins.https_port}/reflect",
        "--request-target",
        f"https://api.test:{bad_origins.https_port}@evil.test/reflect",
    )
    assert out.startswith("HTTP/1.1 400") and "user information" in out
    assert bad_origins.since(seen) == []


async def test_plain_http_host_header_is_the_urls(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    # RFC 9112 §3.2.2: the origin serves the host the policy judged, not the one the
    # client names in Host (a shared front end would route on it).
    seen = bad_origins.mark()
    code, _, err = await curl(
        "-x",
        proxy.url,
        "-H",
        "Host: evil.test",
        f"http://plain.test:{bad_origins.http_port}/reflect",
    )
    assert code == 0, err
    (request,) = bad_origins.since(seen)
    assert request.get("Host") == [f"plain.test:{bad_origins.http_port}"]


async def test_the_tunnel_keeps_serving_after_a_good_request(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    # Keep-alive inside one tunnel: the second request names another host and is refused,
    # the first one got its answer.
    url = f"https://api.test:{bad_origins.https_port}/reflect"
    code, out, err = await curl(
        "-sS",
        "-i",
        "-x",
        proxy.url,
        "--cacert",
        str(proxy.ca_file),
        url,
        "--next",
        "-i",
        "-x",
        proxy.url,
        "--cacert",
        str(proxy.ca_file),
        "-H",
        "Host: evil.test",
        url,
    )
    assert code == 0, err
    assert out.count("HTTP/1.1 200 OK") == 1 and "X-Sandkit-Blocked: host-mismatch" in out
    assert_no_secret(out)


async def test_no_raw_request_inside_a_tunnel_reaches_another_host(
    proxy: RunningProxy, bad_origins: Origins
) -> None:
    # Byte by byte, as a hostile client would write it: absolute form, then a CONNECT
    # inside the tunnel.
    port = bad_origins.https_port
    ctx = ssl.create_default_context(cafile=str(proxy.ca_file))
    for request, expected in [
        (f"GET https://evil.test:{port}/reflect HTTP/1.1\r\nHost: api.test\r\n\r\n", "403"),
        (f"CONNECT evil.test:{port} HTTP/1.1\r\nHost: evil.test\r\n\r\n", "403"),
        (f"CONNECT api.test:{port} HTTP/1.1\r\nHost: api.test:{port}\r\n\r\n", "400"),
        ("GET /reflect HTTP/1.1\r\nHost: api.test\r\nHost: evil.test\r\n\r\n", "400"),
    ]:
        seen = bad_origins.mark()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(f"CONNECT api.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await writer.start_tls(ctx, server_hostname="api.test")
        writer.write(request.encode())
        answer = (await reader.read()).decode("latin-1")
        writer.close()
        assert answer.startswith(f"HTTP/1.1 {expected}"), (request, answer[:200])
        assert bad_origins.since(seen) == []
        assert_no_secret(answer)
