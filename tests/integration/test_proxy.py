"""The real proxy on loopback, driven by curl and by Python clients, against real origins."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest

from sandkit.net.actions import Action, DefaultPolicy
from sandkit.net.approvals import Approval
from sandkit.net.policy import Policy
from tests.integration.conftest import (
    OTHER_SECRET,
    REAL_SECRET,
    Origins,
    RunningProxy,
    one_off_proxy,
    rule,
)


async def curl(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--max-time",
        "30",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def curl_json(*args: str) -> dict[str, object]:
    code, out, err = await curl(*args)
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def headers_of(data: dict[str, object]) -> dict[str, str]:
    headers = data["headers"]
    assert isinstance(headers, dict)
    return {str(k).lower(): str(v) for k, v in headers.items()}


async def test_allowed_http(proxy: RunningProxy, origins: Origins) -> None:
    mark = len(proxy.records())
    data = await curl_json("-x", proxy.url, f"http://allowed.test:{origins.http_port}/hello?x=1")
    assert data["path"] == "/hello?x=1"
    record = await proxy.decision("allowed.test", mark)
    assert record.action == "allowed" and record.rule == "allowed.test"
    assert record.origin == "test-kit (/kits/test/spec.yaml:7:9)"
    assert record.status == 200 and record.path == "/hello"


@pytest.mark.parametrize(
    ("host", "code", "needle"),
    [
        (
            "denied.test",
            "deny-rule",
            "Rule: deny 'denied.test' in kit test-kit (/kits/test/spec.yaml:7)",
        ),
        (
            "ask.test",
            "default-deny",
            "no rule allows this host and the default policy is 'deny-all'",
        ),
    ],
)
async def test_blocked_http_explains_itself(
    proxy: RunningProxy, origins: Origins, host: str, code: str, needle: str
) -> None:
    mark = len(proxy.records())
    status, out, err = await curl("-i", "-x", proxy.url, f"http://{host}:{origins.http_port}/")
    assert status == 0, err
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 403")
    assert f"X-Sandkit-Blocked: {code}" in head
    assert f"Blocked by sandkit network policy: {host}:{origins.http_port}" in body
    assert needle in body
    assert (await proxy.decision(host, mark)).action == "blocked"


async def test_blocked_connect(proxy: RunningProxy, origins: Origins) -> None:
    status, _, err = await curl("-x", proxy.url, f"https://denied.test:{origins.https_port}/")
    assert status != 0 and "403" in err


async def test_connect_tunnel_is_byte_for_byte(proxy: RunningProxy, origins: Origins) -> None:
    # No credential for other.test: the client talks TLS to the origin itself (its cert).
    mark = len(proxy.records())
    data = await curl_json(
        "-x",
        proxy.url,
        "--cacert",
        str(origins.ca_file),
        f"https://other.test:{origins.https_port}/tunnel",
    )
    assert data["path"] == "/tunnel"
    record = await proxy.decision("other.test", mark)
    assert record.scheme == "tunnel" and record.bytes_down > 0 and record.method == "CONNECT"


async def test_credential_injected_for_its_domain_only(
    proxy: RunningProxy, origins: Origins
) -> None:
    placeholder = proxy.placeholders["api"]
    mark = len(proxy.records())
    data = await curl_json(
        "-x",
        proxy.url,
        "--cacert",
        str(proxy.ca_file),
        "-H",
        f"Authorization: Bearer {placeholder}",
        f"https://api.test:{origins.https_port}/v1/models",
    )
    # The origin received the real secret and echoed it: the echo comes back scrubbed.
    assert headers_of(data)["authorization"] == f"Bearer {placeholder}"
    record = await proxy.decision("api.test", mark)
    assert record.scheme == "https" and record.credentials == ["api"]
    assert "the response from api.test carried the real secret of 'api' in its body" in (
        " ".join(record.warnings)
    )
    assert REAL_SECRET not in proxy.log_path.read_text()


async def test_placeholder_to_another_host_is_left_alone(
    proxy: RunningProxy, origins: Origins
) -> None:
    placeholder = proxy.placeholders["api"]
    mark = len(proxy.records())
    data = await curl_json(
        "-x",
        proxy.url,
        "-H",
        f"Authorization: Bearer {placeholder}",
        f"http://other.test:{origins.http_port}/",
    )
    assert headers_of(data)["authorization"] == f"Bearer {placeholder}"
    warnings = (await proxy.decision("other.test", mark)).warnings
    assert any("placeholder for 'api' sent to other.test" in w for w in warnings)
    # Through an intercepted host that carries another credential: still not replaced.
    data = await curl_json(
        "-x",
        proxy.url,
        "--cacert",
        str(proxy.ca_file),
        "-H",
        f"X-Leak: {placeholder}",
        f"https://b.test:{origins.https_port}/",
    )
    headers = headers_of(data)
    assert headers["x-leak"] == placeholder
    assert headers["x-key"] == proxy.placeholders["bsvc"]  # injected, echoed, scrubbed
    assert REAL_SECRET not in json.dumps(data) and OTHER_SECRET not in json.dumps(data)


async def test_no_secret_over_plain_http(proxy: RunningProxy, origins: Origins) -> None:
    mark = len(proxy.records())
    data = await curl_json("-x", proxy.url, f"http://api.test:{origins.http_port}/")
    assert "authorization" not in headers_of(data)
    assert any("plain-HTTP" in w for w in (await proxy.decision("api.test", mark)).warnings)


async def test_keep_alive_reuses_connections(proxy: RunningProxy, origins: Origins) -> None:
    url = f"http://allowed.test:{origins.http_port}/a"
    code, out, err = await curl(
        "-x",
        proxy.url,
        url,
        url,
        url,
        "-w",
        " %{num_connects}\n",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
    )
    assert code == 0, err
    assert out.split() == ["1", "0", "0"]
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        peers = set()
        for _ in range(5):
            async with session.get(url, proxy=proxy.url) as response:
                peers.add((await response.json())["peer"])
    assert len(peers) == 1  # one upstream connection served all five


async def test_large_bodies_stream_both_ways(proxy: RunningProxy, origins: Origins) -> None:
    size = 64 << 20
    block = os.urandom(1 << 20)

    async def chunks() -> object:
        for _ in range(size // len(block)):
            yield block

    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://allowed.test:{origins.http_port}/upload", data=chunks(), proxy=proxy.url
        ) as response:
            result = await response.json()
        expected = hashlib.sha256(block * (size // len(block))).hexdigest()
        assert result == {"len": size, "sha": expected}
        for chunked in ("0", "1"):
            mark = len(proxy.records())
            async with session.get(
                f"http://allowed.test:{origins.http_port}/big",
                params={"size": str(size), "chunked": chunked},
                proxy=proxy.url,
            ) as response:
                digest, total = hashlib.sha256(), 0
                async for piece in response.content.iter_any():
                    digest.update(piece)
                    total += len(piece)
            assert total == size
            assert (await proxy.decision("allowed.test", mark)).bytes_down == size


async def test_large_body_through_tunnel(proxy: RunningProxy, origins: Origins) -> None:
    code, out, err = await curl(
        "-x",
        proxy.url,
        "--cacert",
        str(origins.ca_file),
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        f"https://other.test:{origins.https_port}/big?size={32 << 20}",
    )
    assert code == 0, err
    assert int(out) == 32 << 20


async def test_200_concurrent_connections(proxy: RunningProxy, origins: Origins) -> None:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> int:
            async with session.get(
                f"http://allowed.test:{origins.http_port}/c/{i}", proxy=proxy.url
            ) as response:
                data = await response.json()
                assert data["path"] == f"/c/{i}"
                return response.status

        statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert statuses == [200] * 200


async def test_websocket_upgrade_passes_through(proxy: RunningProxy, origins: Origins) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://allowed.test:{origins.http_port}/ws", proxy=proxy.url) as ws,
    ):
        await ws.send_str("hi")
        assert (await ws.receive_str()) == "echo:hi"
    # and over an intercepted TLS connection
    ctx = ssl.create_default_context(cafile=str(proxy.ca_file))
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"https://api.test:{origins.https_port}/ws", proxy=proxy.url, ssl=ctx
        ) as ws,
    ):
        await ws.send_str("tls")
        assert (await ws.receive_str()) == "echo:tls"


@pytest.mark.parametrize(
    ("allow", "host", "blocked"),
    [
        ((), "127.0.0.1", True),  # allow-all never reaches loopback
        ((), "localhost", True),  # …not through a name either (checked after DNS)
        ((), "169.254.169.254", True),  # the metadata address
        (("**",), "localhost", True),  # a wildcard is not explicit
        (("localhost",), "localhost", False),  # naming the host is
        (("127.0.0.0/8",), "127.0.0.1", False),  # so is naming the network
    ],
)
async def test_ssrf_guard(
    origins: Origins, tmp_path: Path, allow: Sequence[str], host: str, blocked: bool
) -> None:
    policy = Policy([rule(a) for a in allow], [], DefaultPolicy.ALLOW_ALL)
    async with one_off_proxy(policy, tmp_path) as url:
        status, out, _ = await curl(
            "-i", "--connect-timeout", "3", "-x", url, f"http://{host}:{origins.http_port}/ssrf"
        )
    if blocked:
        assert "X-Sandkit-Blocked: private-address" in out
        assert "resolves to the internal address" in out
    else:
        assert status == 0 and '"path": "/ssrf"' in out


async def test_pinned_address_may_be_internal(origins: Origins, tmp_path: Path) -> None:
    policy = Policy([rule("**.svc.test")], [], DefaultPolicy.DENY_ALL)
    async with one_off_proxy(policy, tmp_path, {"db.svc.test": "127.0.0.1"}) as url:
        _, out, _ = await curl("-x", url, f"http://db.svc.test:{origins.http_port}/")
    assert '"path": "/"' in out


async def test_ask_allow_once_remember_refuse_and_time_out(
    origins: Origins, tmp_path: Path
) -> None:
    asked: list[str] = []

    async def ask(host: str, port: int) -> Approval | None:
        asked.append(host)
        if host == "slow.test":
            await asyncio.sleep(30)
        return {
            "once.test": Approval(Action.ALLOW),
            "keep.test": Approval(Action.ALLOW, remember=True),
            "no.test": Approval(Action.DENY),
        }.get(host)

    hosts = ["once.test", "keep.test", "no.test", "slow.test", "silent.test"]
    policy = Policy([], [], DefaultPolicy.DENY_ALL)
    async with one_off_proxy(
        policy, tmp_path, dict.fromkeys(hosts, "127.0.0.1"), ask=ask, ask_timeout=0.5
    ) as url:

        async def get(host: str) -> str:
            _, out, _ = await curl("-i", "-x", url, f"http://{host}:{origins.http_port}/")
            return out.split("\r\n", 1)[0]

        assert await get("once.test") == "HTTP/1.1 200 OK"
        assert await get("once.test") == "HTTP/1.1 200 OK"
        assert await get("keep.test") == "HTTP/1.1 200 OK"
        assert await get("keep.test") == "HTTP/1.1 200 OK"
        assert await get("no.test") == "HTTP/1.1 403 Forbidden"
        assert await get("slow.test") == "HTTP/1.1 403 Forbidden"  # no answer in time: denied
        assert await get("silent.test") == "HTTP/1.1 403 Forbidden"
    # allow-once asks again; a remembered answer does not
    assert asked == ["once.test", "once.test", "keep.test", "no.test", "slow.test", "silent.test"]
