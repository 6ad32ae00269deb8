"""Method and path rules (v3 network-policy@2) end to end: the real proxy on loopback, curl
as the client, real origins. A host with such a rule is TLS-terminated even though it
carries no credential (the client here trusts only the proxy's CA, so a tunnel that was
not terminated fails its handshake), and each request inside the tunnel is judged: the
allowed method reaches the origin, the denied one gets the proxy's 403."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from sandkit.kits.model import NetworkRule
from sandkit.net.actions import DefaultPolicy
from sandkit.net.policy import Policy
from sandkit.net.tls import CA_CERT
from tests.integration.conftest import HOSTS, ORIGIN, Origins, one_off_proxy, rule
from tests.integration.test_proxy import curl


def restricted(pattern: str, methods: tuple[str, ...], paths: tuple[str, ...] = ()) -> NetworkRule:
    return NetworkRule(pattern=pattern, methods=methods, paths=paths, origin=ORIGIN)


POLICY = Policy(
    allow=[
        rule("allowed.test"),  # any request, but see the deny rule below
        restricted("other.test", ("GET",), ("/v1/**",)),  # reads under /v1 only
        rule("api.test"),  # no restriction: tunnelled untouched
    ],
    deny=[restricted("allowed.test", ("POST", "DELETE"))],
    default=DefaultPolicy.DENY_ALL,
)


async def request(proxy: str, ca: Path, method: str, url: str) -> tuple[str, dict[str, str], str]:
    """(status line, headers, body) of what curl got through the proxy."""
    code, out, err = await curl(
        "-i",
        "-x",
        proxy,
        "--cacert",
        str(ca),
        "-X",
        method,
        "--data-binary",
        "x" * (method == "POST"),
        url,
    )
    assert code == 0, err
    out = out.removeprefix("HTTP/1.1 200 Connection Established\r\n\r\n")
    head, _, body = out.partition("\r\n\r\n")
    status, *lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


CASES = [
    # host, method, path, passes, why it was blocked
    ("allowed.test", "GET", "/anything", True, None),
    ("allowed.test", "PUT", "/anything", True, None),
    ("allowed.test", "POST", "/anything", False, "deny-rule"),
    ("allowed.test", "DELETE", "/x", False, "deny-rule"),
    ("allowed.test", "PATCH", "/anything", True, None),
    ("other.test", "GET", "/v1/models", True, None),
    ("other.test", "POST", "/v1/models", False, "default-deny"),  # no rule allows a POST
    ("other.test", "GET", "/v2/models", False, "default-deny"),
    ("other.test", "GET", "/v10/models", False, "default-deny"),  # not under /v1
]


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_each_request_is_judged_by_its_method_and_path(
    origins: Origins, tmp_path: Path, scheme: str
) -> None:
    upstream = ssl.create_default_context(cafile=str(origins.ca_file))
    pins = dict.fromkeys(HOSTS, "127.0.0.1")
    port = origins.https_port if scheme == "https" else origins.http_port
    async with one_off_proxy(POLICY, tmp_path, pins, upstream_tls=upstream) as proxy:
        ca = tmp_path / "ca" / CA_CERT  # the proxy's own CA: trusted by the client alone
        for host, method, path, passes, why in CASES:
            status, headers, body = await request(
                proxy, ca, method, f"{scheme}://{host}:{port}{path}"
            )
            case = (scheme, host, method, path)
            if passes:
                assert status == "HTTP/1.1 200 OK", (case, status, body[:200])
                assert f'"method": "{method}"' in body and f'"path": "{path}"' in body, case
            else:
                assert status.startswith("HTTP/1.1 403"), (case, status)
                assert headers["x-sandkit-blocked"] == why, case
                assert f"Blocked by sandkit network policy: {host}:{port}" in body, case
                assert '"method"' not in body, case  # the origin never answered


async def test_a_host_without_such_rules_is_tunnelled_not_terminated(
    origins: Origins, tmp_path: Path
) -> None:
    """The origin's own certificate reaches the client: the proxy only relays bytes."""
    upstream = ssl.create_default_context(cafile=str(origins.ca_file))
    pins = dict.fromkeys(HOSTS, "127.0.0.1")
    url = f"https://api.test:{origins.https_port}/plain"
    async with one_off_proxy(POLICY, tmp_path, pins, upstream_tls=upstream) as proxy:
        status, _, body = await request(proxy, origins.ca_file, "POST", url)
        assert status == "HTTP/1.1 200 OK" and '"method": "POST"' in body
        mine = tmp_path / "ca" / CA_CERT
        assert mine.is_file()
        code, _, err = await curl("-x", proxy, "--cacert", str(mine), url)
        assert code == 60, err  # curl: the peer's certificate cannot be verified
        # A host with a method rule is the other way round: only the proxy's CA will do.
        code, _, err = await curl(
            "-x",
            proxy,
            "--cacert",
            str(origins.ca_file),
            f"https://allowed.test:{origins.https_port}/",
        )
        assert code == 60, err
