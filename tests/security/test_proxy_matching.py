"""Rules match meaning, not text (issue 14, item 8), against the real proxy on loopback.

- Method/path rules: no spelling of a path (``..``, ``%2e%2e``, ``//``, ``/./``,
  ``/%61dmin``, ``;`` parameters, absolute form) slips past a deny rule or out of an allow
  rule, in a terminated tunnel or over plain HTTP; a path that cannot be normalised
  (an encoded slash, NUL, ``..`` above the root) is refused and says why.
- Address rules: a deny on 127.0.0.1 (a stand-in for any address, 93.184.216.34 say)
  holds for ``2130706433``, ``0x7f000001``, ``127.1``, ``017700000001``, the IPv4-mapped
  IPv6 form and a name that resolves there; an allowed network admits them alike.

Every origin records what reached it: a refused request must reach none."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandkit.kits.model import NetworkRule
from sandkit.net.actions import DefaultPolicy
from sandkit.net.decisions import DecisionLog
from sandkit.net.guard import Resolver
from sandkit.net.policy import Policy
from sandkit.net.proxy import EgressProxy, ProxySettings
from sandkit.net.tls import CertificateAuthority
from tests.integration.conftest import ORIGIN, RunningProxy, rule
from tests.integration.test_proxy import curl
from tests.security.test_proxy_injection import HOSTS, MORE_HOSTS, Origins
from tests.security.test_proxy_injection import bad_origins as bad_origins  # a fixture


def paths_rule(pattern: str, methods: tuple[str, ...], paths: tuple[str, ...]) -> NetworkRule:
    return NetworkRule(pattern=pattern, methods=methods, paths=paths, origin=ORIGIN)


@contextlib.asynccontextmanager
async def running(
    policy: Policy, home: Path, origins: Origins, pins: dict[str, str] | None = None
) -> AsyncIterator[RunningProxy]:
    settings = ProxySettings(
        policy=policy,
        ca=CertificateAuthority.load_or_create(home / "ca"),
        log=DecisionLog(home / "decisions.jsonl"),
        resolver=Resolver(
            pins if pins is not None else dict.fromkeys(HOSTS + MORE_HOSTS, "127.0.0.1")
        ),
        upstream_tls=ssl.create_default_context(cafile=str(origins.ca_file)),
        sandbox="matching",
    )
    proxy = EgressProxy(settings)
    _, port = await proxy.start()
    try:
        yield RunningProxy(
            proxy,
            settings,
            port,
            f"http://127.0.0.1:{port}",
            settings.ca.cert_path,
            {},
            home / "decisions.jsonl",
        )
    finally:
        await proxy.aclose()


async def get(proxy: RunningProxy, url: str, *args: str) -> str:
    """The answer's status line, headers and body, as curl got it, path left as written."""
    code, out, err = await curl(
        "-i", "--path-as-is", "-x", proxy.url, "--cacert", str(proxy.ca_file), *args, url
    )
    assert code == 0, err
    return out.removeprefix("HTTP/1.1 200 Connection Established\r\n\r\n")


def refused(out: str) -> bool:
    head = out.partition("\r\n\r\n")[0]
    return head.startswith("HTTP/1.1 403") and (
        "X-Sandkit-Blocked: deny-rule" in head or "X-Sandkit-Blocked: bad-target" in head
    )


# -- paths ------------------------------------------------------------------------------
DENIED_SPELLINGS = [
    "/admin",
    "//admin",
    "/./admin",
    "/%61dmin",
    "/%61%64%6D%69%6E",
    "/v1/../admin",
    "/v1/%2e%2e/admin",
    "/v1/%2E%2e/admin/",
    "/v1/.%2e/admin",
    "/v1//..//admin",
    "/admin/users/7",
    "/admin;jsessionid=1",
    "/v1/..;/admin",
    "/v1/..%2fadmin",  # refused: an encoded slash
    "/%2e%2e/admin",  # refused: above the root
]


async def test_no_spelling_of_a_denied_path_reaches_the_origin(
    bad_origins: Origins, tmp_path: Path
) -> None:
    policy = Policy(
        [rule("paths.test")],
        [paths_rule("paths.test", ("ANY",), ("/admin", "/admin/**"))],
        DefaultPolicy.DENY_ALL,
    )
    tls = f"https://paths.test:{bad_origins.https_port}"
    plain = f"http://paths.test:{bad_origins.http_port}"
    async with running(policy, tmp_path, bad_origins) as proxy:
        for base in (tls, plain):
            for path in DENIED_SPELLINGS:
                seen = bad_origins.mark()
                out = await get(proxy, base + path)
                assert refused(out), (base + path, out[:300])
                assert bad_origins.since(seen) == [], base + path
            # The same path as an absolute-form target inside the tunnel.
            seen = bad_origins.mark()
            out = await get(proxy, tls + "/", "--request-target", f"{tls}/v1/../admin")
            assert refused(out) and bad_origins.since(seen) == []
            # What the rule does not name still goes through, as written.
            seen = bad_origins.mark()
            assert (await get(proxy, base + "/v1//admin-panel")).startswith("HTTP/1.1 200")
            assert [r.target for r in bad_origins.since(seen)] == ["/v1//admin-panel"]


ESCAPES = [
    "/v1/../admin",
    "/v1/%2e%2e/admin",
    "/v1/%2E%2E/%61dmin",
    "/v1/./../admin",
    "/v1/x/../../admin",
    "/v1/..;/admin",
    "/v1/..%2fadmin",
    "/v1/%2e%2e%2fadmin",
    "/v1/models/..%00",
]


async def test_no_spelling_escapes_an_allowed_path(bad_origins: Origins, tmp_path: Path) -> None:
    policy = Policy([paths_rule("reads.test", ("GET",), ("/v1/**",))], [], DefaultPolicy.DENY_ALL)
    tls = f"https://reads.test:{bad_origins.https_port}"
    plain = f"http://reads.test:{bad_origins.http_port}"
    async with running(policy, tmp_path, bad_origins) as proxy:
        for base in (tls, plain):
            for path in ESCAPES:
                seen = bad_origins.mark()
                out = await get(proxy, base + path)
                assert out.startswith("HTTP/1.1 403"), (base + path, out[:300])
                assert bad_origins.since(seen) == [], base + path
            for path in ("/v1/models", "//v1//models", "/%76%31/models", "/v1/a/../b"):
                assert (await get(proxy, base + path)).startswith("HTTP/1.1 200"), path
        seen = bad_origins.mark()
        out = await get(proxy, tls + "/v1/x", "--request-target", f"{tls}/v1/../admin")
        assert out.startswith("HTTP/1.1 403") and bad_origins.since(seen) == []


async def test_a_path_that_cannot_be_normalised_says_why(
    bad_origins: Origins, tmp_path: Path
) -> None:
    policy = Policy([paths_rule("reads.test", ("GET",), ("/v1/**",))], [], DefaultPolicy.DENY_ALL)
    async with running(policy, tmp_path, bad_origins) as proxy:
        mark = len(proxy.records())
        out = await get(proxy, f"https://reads.test:{bad_origins.https_port}/v1/a%2Fb")
        assert "X-Sandkit-Blocked: bad-target" in out
        assert "the path holds an encoded slash (%2F)" in out
        assert "send the plain path" in out
        record = await proxy.decision("reads.test", mark)
        assert (record.reason, record.rule) == ("bad-target", "reads.test")


# -- addresses --------------------------------------------------------------------------
LOOPBACK_SPELLINGS = ["2130706433", "0x7f000001", "127.1", "017700000001", "[::ffff:127.0.0.1]"]


async def raw(proxy: RunningProxy, request: str) -> str:
    """Send bytes as written: curl would tidy a numeric host into dotted form."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(request.encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if b"Content-Length: " in head:
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            head += await asyncio.wait_for(reader.readexactly(length), 30)
    finally:
        writer.close()
    return head.decode("latin-1")


async def test_a_denied_address_holds_for_every_spelling_and_every_name(
    bad_origins: Origins, tmp_path: Path
) -> None:
    policy = Policy([], [rule("127.0.0.1")], DefaultPolicy.ALLOW_ALL)
    pins = {"alias.test": "127.0.0.1"}  # a name that leads there (a pin, or DNS)
    async with running(policy, tmp_path, bad_origins, pins) as proxy:
        for host in [*LOOPBACK_SPELLINGS, "alias.test"]:
            seen = bad_origins.mark()
            plain = await raw(
                proxy,
                f"GET http://{host}:{bad_origins.http_port}/x HTTP/1.1\r\n"
                "Host: x\r\nConnection: close\r\n\r\n",
            )
            tunnel = await raw(proxy, f"CONNECT {host}:{bad_origins.https_port} HTTP/1.1\r\n\r\n")
            for out in (plain, tunnel):
                assert out.startswith("HTTP/1.1 403"), (host, out)
                assert "X-Sandkit-Blocked: deny-rule" in out, (host, out)
                assert "Rule: deny '127.0.0.1' in kit test-kit" in out
            assert bad_origins.since(seen) == [], host


async def test_an_allowed_network_admits_every_spelling(
    bad_origins: Origins, tmp_path: Path
) -> None:
    policy = Policy([rule("127.0.0.0/8")], [], DefaultPolicy.DENY_ALL)
    async with running(policy, tmp_path, bad_origins, {}) as proxy:
        for host in LOOPBACK_SPELLINGS:
            seen = bad_origins.mark()
            out = await raw(
                proxy,
                f"GET http://{host}:{bad_origins.http_port}/numeric HTTP/1.1\r\n"
                "Connection: close\r\n\r\n",
            )
            assert out.startswith("HTTP/1.1 200"), (host, out)
            assert [r.target for r in bad_origins.since(seen)] == ["/numeric"]
        mark = len(proxy.records())
        await raw(proxy, f"GET http://2130706433:{bad_origins.http_port}/ HTTP/1.1\r\n\r\n")
        record = await proxy.decision("2130706433", mark)
        assert (record.reason, record.rule) == ("allow-rule", "127.0.0.0/8")


@pytest.mark.parametrize("deny", ["127.0.0.0/8", "::ffff:127.0.0.0/104"])
async def test_a_denied_network_beats_an_allowed_name(
    bad_origins: Origins, tmp_path: Path, deny: str
) -> None:
    # The kit allows alias.test by name, and denies where it points.
    policy = Policy([rule("alias.test")], [rule(deny)], DefaultPolicy.DENY_ALL)
    async with running(policy, tmp_path, bad_origins, {"alias.test": "127.0.0.1"}) as proxy:
        seen = bad_origins.mark()
        out = await raw(proxy, f"CONNECT alias.test:{bad_origins.https_port} HTTP/1.1\r\n\r\n")
        assert out.startswith("HTTP/1.1 403") and "X-Sandkit-Blocked: deny-rule" in out
        assert f"Rule: deny '{deny}'" in out
        assert bad_origins.since(seen) == []
