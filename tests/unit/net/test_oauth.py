"""The pure OAuth core: token responses rewritten, sentinels swapped, credential files
rendered (issue 16)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from sandkit.kits.model import OAuthSpec
from sandkit.net.oauth import (
    DEFAULT_FIELDS,
    MAX_TOKEN_BODY,
    BadTokenResponse,
    Sentinels,
    Tokens,
    fields,
    new_sentinels,
    render_structure,
    rewrite_token_response,
    swap_headers,
    swap_refresh_body,
    toml_text,
)

S = Sentinels("sent-access-0001", "sent-refresh-0002")
ACCESS, REFRESH = "real-access-abcdef123456", "real-refresh-abcdef654321"


def answer(**data: object) -> bytes:
    return json.dumps(data).encode()


def test_defaults_are_sbxs() -> None:
    spec = OAuthSpec(token_host="a", token_path="/t")
    assert fields(spec) == {
        "accessToken": "access_token",
        "refreshToken": "refresh_token",
        "expiresIn": "expires_in",
        "scope": "scope",
    }
    custom = OAuthSpec(token_host="a", token_path="/t", response_fields={"accessToken": "tok"})
    assert fields(custom) == {**DEFAULT_FIELDS, "accessToken": "tok"}


def test_a_token_answer_is_rewritten_and_the_real_tokens_returned() -> None:
    body, tokens = rewrite_token_response(
        answer(access_token=ACCESS, refresh_token=REFRESH, expires_in=60, scope="a b", x=1),
        DEFAULT_FIELDS,
        S,
        now=1000.0,
    )
    assert json.loads(body) == {
        "access_token": S.access,
        "refresh_token": S.refresh,
        "expires_in": 60,
        "scope": "a b",
        "x": 1,
    }
    assert tokens == Tokens(ACCESS, REFRESH, 1060.0, "a b")
    assert ACCESS.encode() not in body and REFRESH.encode() not in body


def test_custom_field_names() -> None:
    names = {**DEFAULT_FIELDS, "accessToken": "at", "refreshToken": "rt", "expiresIn": "ttl"}
    body, tokens = rewrite_token_response(
        answer(at=ACCESS, rt=REFRESH, ttl="30"), names, S, now=0.0
    )
    assert json.loads(body) == {"at": S.access, "rt": S.refresh, "ttl": "30"}
    assert tokens.expires_at == 30.0


def test_a_refresh_answer_without_a_new_refresh_token_keeps_the_old() -> None:
    body, tokens = rewrite_token_response(
        answer(access_token=ACCESS), DEFAULT_FIELDS, S, now=0.0, previous_refresh="old-refresh"
    )
    assert json.loads(body) == {"access_token": S.access}
    assert tokens.refresh == "old-refresh" and tokens.expires_at is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"access_token": "x"',
        b"\xff\xfe",
        b"[]",
        b'"access_token"',
        answer(),
        answer(access_token=""),
        answer(access_token=5),
        answer(access_token=None),
        answer(access_token=ACCESS, refresh_token=7),
        answer(access_token=ACCESS, refresh_token=""),
        answer(access_token=ACCESS, id_token=ACCESS),  # the token again, elsewhere
        answer(access_token=ACCESS, refresh_token=REFRESH, nested={"copy": REFRESH}),
        b" " * (MAX_TOKEN_BODY + 1),
    ],
)
def test_anything_else_fails_closed(body: bytes) -> None:
    with pytest.raises(BadTokenResponse):
        rewrite_token_response(body, DEFAULT_FIELDS, S, now=0.0)


def test_booleans_are_not_expiries() -> None:
    _, tokens = rewrite_token_response(
        answer(access_token=ACCESS, expires_in=True), DEFAULT_FIELDS, S, now=0.0
    )
    assert tokens.expires_at is None


def test_swap_headers() -> None:
    headers = [("Authorization", f"Bearer {S.access}"), ("X-R", S.refresh), ("A", "b")]
    out, swapped = swap_headers(headers, [(S.access, ACCESS), (S.refresh, REFRESH)])
    assert out == [("Authorization", f"Bearer {ACCESS}"), ("X-R", REFRESH), ("A", "b")]
    assert swapped
    same, swapped = swap_headers([("A", "b")], [(S.access, ACCESS)])
    assert same == [("A", "b")] and not swapped
    _, swapped = swap_headers([("A", "")], [("", ACCESS)])  # an empty sentinel never matches
    assert not swapped


def test_swap_refresh_body_form_and_json() -> None:
    form = f"grant_type=refresh_token&refresh_token={S.refresh}&client_id=c".encode()
    out = swap_refresh_body(
        form, "application/x-www-form-urlencoded; charset=utf-8", DEFAULT_FIELDS, S.refresh, REFRESH
    )
    assert out is not None
    assert dict(parse_qsl(out.decode())) == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": "c",
    }
    body = json.dumps({"grant_type": "refresh_token", "refresh_token": S.refresh}).encode()
    out = swap_refresh_body(body, "application/json", DEFAULT_FIELDS, S.refresh, REFRESH)
    assert out is not None and json.loads(out)["refresh_token"] == REFRESH


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"refresh_token=other", "application/x-www-form-urlencoded"),
        (f"client_id={S.refresh}".encode(), "application/x-www-form-urlencoded"),  # wrong field
        (f"refresh_token={S.refresh}".encode(), "text/plain"),
        (b"\xff", "application/x-www-form-urlencoded"),
        (b"{", "application/json"),
        (b"[]", "application/json"),
        (json.dumps({"code": S.refresh}).encode(), "application/json"),
    ],
)
def test_swap_refresh_body_leaves_anything_else(body: bytes, kind: str) -> None:
    assert swap_refresh_body(body, kind, DEFAULT_FIELDS, S.refresh, REFRESH) is None


def test_new_sentinels_are_random_with_the_kits_prefix() -> None:
    spec = OAuthSpec(token_host="a", token_path="/t", access_sentinel="sk-ant-oat01-pm")
    a, b = new_sentinels("anthropic", spec), new_sentinels("anthropic", spec)
    assert a != b and a.access.startswith("sk-ant-oat01-pm-")
    assert a.refresh.startswith("sandkit-oauth-anthropic-refresh-")


def test_render_structure_uses_sentinels() -> None:
    structure = {
        "claudeAiOauth": {
            "accessToken": "{{.AccessToken}}",
            "refreshToken": "{{ .RefreshToken }}",
            "expiresAt": "{{.ExpiresAt}}",
            "scopes": "{{.Scopes}}",
            "note": "token {{.AccessToken}}",
            "n": 3,
            "list": ["{{.RefreshToken}}"],
        }
    }
    out = render_structure(structure, S, 12.5)
    assert out == {
        "claudeAiOauth": {
            "accessToken": S.access,
            "refreshToken": S.refresh,
            "expiresAt": 12500,
            "scopes": [],
            "note": f"token {S.access}",
            "n": 3,
            "list": [S.refresh],
        }
    }


def test_toml_text() -> None:
    text = toml_text({"a": 'x"y', "n": 1, "b": True, "t": {"k": [1, "z"], "u": {"v": 2}}})
    import tomllib

    assert tomllib.loads(text) == {
        "a": 'x"y',
        "n": 1,
        "b": True,
        "t": {"k": [1, "z"], "u": {"v": 2}},
    }


def test_credential_file_json_toml_template_and_none() -> None:
    from sandkit.net.oauth import credential_file

    structure = {"auth": {"access": "{{.AccessToken}}", "expires": "{{.ExpiresAt}}"}}
    spec = OAuthSpec(
        token_host="a",
        token_path="/t",
        credential_file="~/.x/auth.json",
        credential_structure=structure,
    )
    path, data = credential_file(spec, S, 2.0, "/home/agent") or ("", b"")
    assert path == "/home/agent/.x/auth.json"
    assert json.loads(data) == {"auth": {"access": S.access, "expires": 2000}}
    toml_spec = spec.model_copy(update={"credential_format": "toml"})
    import tomllib

    _, data = credential_file(toml_spec, S, None, "/h") or ("", b"")
    assert tomllib.loads(data.decode()) == {"auth": {"access": S.access, "expires": 0}}
    template = OAuthSpec(
        token_host="a",
        token_path="/t",
        credential_file="/etc/tok",
        credential_template="token={{.RefreshToken}}\n",
    )
    assert credential_file(template, S, None, "/h") == ("/etc/tok", f"token={S.refresh}\n".encode())
    assert credential_file(OAuthSpec(token_host="a", token_path="/t"), S, None, "/h") is None
