"""Credential injection, pure: secrets only in the header their credential names, only for
their own hosts, only over TLS, never with a byte that could start another header."""

from __future__ import annotations

import base64

import pytest

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


def test_placeholder_in_another_header_of_its_own_host_is_left_alone() -> None:
    # A CORS server echoes Origin into Access-Control-Allow-Origin: were the placeholder
    # swapped there, the real secret would come back to the guest.
    out = INJ.apply(
        "custom.example",
        "/",
        [("X-Extra", "Bearer ph-custom"), ("Origin", "ph-custom"), ("Cookie", "k=ph-custom")],
        secure=True,
    )
    assert out.headers == [
        ("X-Extra", "Bearer ph-custom"),
        ("Origin", "ph-custom"),
        ("Cookie", "k=ph-custom"),
        ("X-Other", "cv"),
    ]
    assert out.injected == ["custom"]
    assert out.warnings == [
        f"placeholder for 'custom' in header {name} to custom.example: only X-Other "
        "carries the credential; left as is"
        for name in ("X-Extra", "Origin", "Cookie")
    ]


def test_placeholder_of_another_credential_on_an_intercepted_host_is_left_alone() -> None:
    out = INJ.apply("api.anthropic.com", "/", [("Referer", "https://x/ph-gh")], secure=True)
    assert ("Referer", "https://x/ph-gh") in out.headers
    assert "ghp-real" not in repr(out.headers)
    assert out.warnings == [
        "placeholder for 'gh' sent to api.anthropic.com, which is not one of its domains; "
        "left as is"
    ]


def test_placeholder_in_the_url_of_its_own_host_is_left_alone() -> None:
    out = INJ.apply("api.anthropic.com", "/v1?key=ph-anthropic", [], secure=True)
    assert out.warnings == [
        "placeholder for 'anthropic' in the URL to api.anthropic.com; left as is"
    ]
    assert out.headers == [("x-api-key", "sk-real")]


def test_only_the_named_header_is_replaced_whatever_its_case() -> None:
    out = INJ.apply(
        "api.anthropic.com",
        "/",
        [("X-API-KEY", "ph-anthropic"), ("x-api-key", "again"), ("X-Copy", "ph-anthropic")],
        secure=True,
    )
    assert out.headers == [("X-Copy", "ph-anthropic"), ("x-api-key", "sk-real")]


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("sk\r\nX-Evil: 1", "a carriage return"),
        ("sk\nX-Evil: 1", "a line feed"),
        ("sk\x00tail", "a NUL byte"),
        ("sk\x7f", "a character a header cannot carry"),
        ("sk\u00e9", "a character a header cannot carry"),
        ("-----BEGIN KEY-----\nabc\n-----END KEY-----\n", "a line feed"),
    ],
)
def test_values_a_header_cannot_carry_are_refused(value: str, what: str) -> None:
    inj = Injector([bound("bad", value, Inject(domain="bad.example", header="X-K"))])
    out = inj.apply("bad.example", "/", [("X-K", "ph-bad")], secure=True)
    assert out.headers == [("X-K", "ph-bad")] and out.injected == []
    assert out.warnings == [
        f"the value for 'bad' holds {what}; nothing injected into X-K, so it cannot add "
        "headers of its own: store the bare secret with `sandkit secret set bad`"
    ]


def test_a_format_that_adds_a_line_is_refused_too() -> None:
    inj = Injector(
        [bound("fmt", "ok", Inject(domain="f.example", header="X-K", format="%s\r\nX-Evil: 1"))]
    )
    out = inj.apply("f.example", "/", [], secure=True)
    assert out.headers == [] and "a carriage return" in out.warnings[0]


@pytest.mark.parametrize("header", ["X K", "X-K:", "X\r\nK", ""])
def test_an_invalid_header_name_is_refused(header: str) -> None:
    inj = Injector([bound("hn", "ok", Inject(domain="h.example", header=header))])
    out = inj.apply("h.example", "/", [], secure=True)
    assert out.headers == [] and out.injected == []
    assert "which is not a valid header name" in out.warnings[0]


def test_a_tab_inside_a_value_is_fine() -> None:
    inj = Injector([bound("tab", "a\tb", Inject(domain="t.example", header="X-K"))])
    assert inj.apply("t.example", "/", [], secure=True).headers == [("X-K", "a\tb")]


def test_the_scrubber_knows_every_value_and_the_basic_token() -> None:
    needles = {(n.secret, n.replacement, n.service) for n in INJ.scrubber.needles}
    token = base64.b64encode(b"bob:pw")
    assert needles == {
        (b"sk-real", b"ph-anthropic", "anthropic"),
        (b"ghp-real", b"ph-gh", "gh"),
        (b"pw", b"ph-basic", "basic"),
        (token, b"ph-basic", "basic"),
        (b"cv", b"ph-custom", "custom"),
    }
    assert not Injector([bound("empty", "", Inject(domain="e.example", header="X"))]).scrubber


def test_missing_value_is_a_warning() -> None:
    out = INJ.apply("unset.example", "/", [], secure=True)
    assert out.injected == [] and "sandkit secret set unset" in out.warnings[0]


def test_intercepts() -> None:
    assert INJ.intercepts("api.github.com") and not INJ.intercepts("github.com")
