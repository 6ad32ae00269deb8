"""Credential injection, pure: secrets only for their own hosts, only over TLS."""

from __future__ import annotations

import base64

from sandkit.kits.model import Credential, Inject, Origin
from sandkit.net.inject import BoundCredential, Injector

ORIGIN = Origin(kit="k", file="f", line=1, column=1)


def bound(service: str, value: str | None, *injects: Inject) -> BoundCredential:
    cred = Credential(service=service, env=f"{service.upper()}_KEY", inject=injects, origin=ORIGIN)
    return BoundCredential(cred, value, f"ph-{service}")


INJ = Injector(
    [
        bound("anthropic", "sk-real", Inject(domain="api.anthropic.com", header="x-api-key")),
        bound(
            "gh",
            "ghp-real",
            Inject(domain="api.github.com", header="Authorization", format="token %s"),
        ),
        bound(
            "basic",
            "pw",
            Inject(
                domain="reg.example",
                header="Authorization",
                format="Basic %s",
                basic_username="bob",
            ),
        ),
        bound("unset", None, Inject(domain="unset.example", header="X-K")),
        bound("custom", "cv", Inject(domain="custom.example", header="X-Other")),
    ]
)


def test_injects_replacing_the_header() -> None:
    out = INJ.apply(
        "API.anthropic.com.", "/v1", [("x-api-key", "ph-anthropic"), ("Accept", "*/*")], secure=True
    )
    assert out.headers == [("Accept", "*/*"), ("x-api-key", "sk-real")]
    assert out.injected == ["anthropic"] and out.warnings == []


def test_formats_and_basic() -> None:
    assert ("Authorization", "token ghp-real") in INJ.apply(
        "api.github.com", "/", [], secure=True
    ).headers
    expected = "Basic " + base64.b64encode(b"bob:pw").decode()
    assert ("Authorization", expected) in INJ.apply("reg.example", "/", [], secure=True).headers


def test_never_over_plain_http() -> None:
    out = INJ.apply("api.anthropic.com", "/", [("x-api-key", "ph-anthropic")], secure=False)
    assert out.headers == [("x-api-key", "ph-anthropic")] and out.injected == []
    assert "plain-HTTP" in out.warnings[0]


def test_placeholder_to_another_host_is_left_and_reported() -> None:
    out = INJ.apply("evil.example", "/?k=ph-gh", [("x-api-key", "ph-anthropic")], secure=True)
    assert out.headers == [("x-api-key", "ph-anthropic")]
    assert out.warnings == [
        "placeholder for 'anthropic' sent to evil.example, which is not one of its domains; left as is",
        "placeholder for 'gh' in the URL to evil.example; left as is",
    ]


def test_placeholder_in_another_header_of_its_own_host_is_swapped() -> None:
    out = INJ.apply("custom.example", "/", [("X-Extra", "Bearer ph-custom")], secure=True)
    assert ("X-Extra", "Bearer cv") in out.headers and ("X-Other", "cv") in out.headers


def test_missing_value_is_a_warning() -> None:
    out = INJ.apply("unset.example", "/", [], secure=True)
    assert out.injected == [] and "sandkit secret set unset" in out.warnings[0]


def test_intercepts() -> None:
    assert INJ.intercepts("api.github.com") and not INJ.intercepts("github.com")
