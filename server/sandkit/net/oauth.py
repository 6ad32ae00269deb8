"""OAuth through the proxy (pure): a token endpoint's answer rewritten so the guest holds
sentinels in place of the real tokens, and sentinels swapped back for the real values on
the way out. No I/O: the proxy glue (``net/proxy/oauth.py``) reads and writes, the host
store (``net/tokens.py``) keeps what this returns.

A token response is small; anything that is not a bounded JSON object with a string
access token is refused (fail closed): the guest then gets an error, never a real token.
"""

from __future__ import annotations

import json
import secrets as random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

if TYPE_CHECKING:  # the kit models cost ~0.1 s to import: annotations only
    from sandkit.kits.model import OAuthSpec

MAX_TOKEN_BODY = 1 << 20  # bytes of a token request or response the proxy holds

# sbx's responseFields: logical name → JSON key of the token response.
DEFAULT_FIELDS: Mapping[str, str] = {
    "accessToken": "access_token",
    "refreshToken": "refresh_token",
    "expiresIn": "expires_in",
    "scope": "scope",
}


class BadTokenResponse(ValueError):
    """A token endpoint's success answer the proxy will not pass on (fail closed)."""


@dataclass(frozen=True)
class Sentinels:
    access: str
    refresh: str


@dataclass(frozen=True)
class Tokens:
    """The real tokens, kept on the host only. ``expires_at`` is seconds since the epoch."""

    access: str
    refresh: str | None = None
    expires_at: float | None = None
    scope: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "access": self.access,
            "refresh": self.refresh,
            "expires_at": self.expires_at,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Tokens | None:
        access, refresh = data.get("access"), data.get("refresh")
        expires, scope = data.get("expires_at"), data.get("scope")
        if not isinstance(access, str) or not access:
            return None
        return cls(
            access,
            refresh if isinstance(refresh, str) and refresh else None,
            float(expires) if isinstance(expires, int | float) else None,
            scope if isinstance(scope, str) else None,
        )


def fields(spec: OAuthSpec) -> dict[str, str]:
    """The kit's responseFields over sbx's defaults."""
    return {**DEFAULT_FIELDS, **spec.response_fields}


def new_sentinels(service: str, spec: OAuthSpec) -> Sentinels:
    """Random per sandbox; the kit's sentinel (if any) as a recognisable prefix."""
    access = spec.access_sentinel or f"sandkit-oauth-{service}-access"
    refresh = spec.refresh_sentinel or f"sandkit-oauth-{service}-refresh"
    return Sentinels(f"{access}-{random.token_hex(16)}", f"{refresh}-{random.token_hex(16)}")


def _nonempty(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def rewrite_token_response(
    body: bytes,
    names: Mapping[str, str],
    sentinels: Sentinels,
    *,
    now: float,
    previous_refresh: str | None = None,
) -> tuple[bytes, Tokens]:
    """The body the guest gets (sentinels at the ``names`` positions) and the real
    tokens to store. A refresh answer without a new refresh token keeps the old one.
    Raises BadTokenResponse for anything but a bounded JSON object with an access token."""
    if len(body) > MAX_TOKEN_BODY:
        raise BadTokenResponse(f"token response larger than {MAX_TOKEN_BODY >> 10} KiB")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadTokenResponse("token response is not JSON") from None
    if not isinstance(data, dict):
        raise BadTokenResponse("token response is not a JSON object")
    access_key, refresh_key = names["accessToken"], names["refreshToken"]
    access = _nonempty(data.get(access_key))
    if access is None:
        raise BadTokenResponse(f"token response has no string '{access_key}'")
    refresh = data.get(refresh_key)
    if refresh is not None and _nonempty(refresh) is None:
        raise BadTokenResponse(f"token response has a '{refresh_key}' that is not a string")
    expires_in = data.get(names["expiresIn"])
    expires_at = None
    number = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
    if number or (isinstance(expires_in, str) and expires_in.isdigit()):
        expires_at = now + float(expires_in)  # type: ignore[arg-type]
    scope = data.get(names["scope"])
    data[access_key] = sentinels.access
    if refresh is not None:
        data[refresh_key] = sentinels.refresh
    tokens = Tokens(
        access,
        _nonempty(refresh) or previous_refresh,
        expires_at,
        scope if isinstance(scope, str) else None,
    )
    out = json.dumps(data, separators=(",", ":")).encode()
    for real in (tokens.access, tokens.refresh):
        # e.g. the token repeated under another key (id_token, a nested copy)
        if real and len(real) >= 8 and real.encode() in out:
            raise BadTokenResponse("token response repeats a token outside its field")
    return out, tokens


def swap_headers(
    headers: Sequence[tuple[str, str]], pairs: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, str]], bool]:
    """Each (sentinel, real) pair's sentinel replaced in header values; whether any was.
    The caller decides the host (resource hosts and the token endpoint only)."""
    out, swapped = [], False
    for k, v in headers:
        for sentinel, real in pairs:
            if sentinel and sentinel in v:
                v, swapped = v.replace(sentinel, real), True
        out.append((k, v))
    return out, swapped


def swap_refresh_body(
    body: bytes, content_type: str, names: Mapping[str, str], sentinel: str, real: str
) -> bytes | None:
    """A refresh grant's body (form or JSON) with the refresh sentinel replaced by the
    real refresh token in its field only; None when the body holds no sentinel there."""
    kind = content_type.split(";", 1)[0].strip().lower()
    key = names["refreshToken"]
    if kind == "application/json":
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(data, dict) or data.get(key) != sentinel:
            return None
        data[key] = real
        return json.dumps(data, separators=(",", ":")).encode()
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return None
        if not any(k == key and v == sentinel for k, v in pairs):
            return None
        return urlencode(
            [(k, real if k == key and v == sentinel else v) for k, v in pairs]
        ).encode()
    return None


def render_structure(node: object, sentinels: Sentinels, expires_at: float | None) -> object:
    """A credentialFile ``structure`` with sbx's {{.Field}} placeholders filled from the
    sentinels (never the real tokens): {{.ExpiresAt}} alone in a value becomes a number."""
    if isinstance(node, dict):
        return {k: render_structure(v, sentinels, expires_at) for k, v in node.items()}
    if isinstance(node, list):
        return [render_structure(v, sentinels, expires_at) for v in node]
    if not isinstance(node, str):
        return node
    expires_ms = int(expires_at * 1000) if expires_at is not None else 0
    if node.strip() in ("{{.ExpiresAt}}", "{{ .ExpiresAt }}"):
        return expires_ms
    if node.strip() in ("{{.Scopes}}", "{{ .Scopes }}"):
        return []
    for name, value in (
        ("AccessToken", sentinels.access),
        ("RefreshToken", sentinels.refresh),
        ("ExpiresAt", str(expires_ms)),
        ("Scopes", ""),
    ):
        node = node.replace("{{." + name + "}}", value).replace("{{ ." + name + " }}", value)
    return node


def toml_text(data: Mapping[str, object]) -> str:
    """A flat-or-nested TOML rendering of a rendered structure (strings, numbers, bools,
    lists of those, tables)."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))

    lines: list[str] = []

    def table(prefix: str, d: Mapping[str, object]) -> None:
        scalars = [(k, v) for k, v in d.items() if not isinstance(v, dict)]
        tables = [(k, v) for k, v in d.items() if isinstance(v, dict)]
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for k, v in scalars:
            lines.append(f"{json.dumps(k)} = {value(v)}")
        for k, v in tables:
            assert isinstance(v, dict)
            table(f"{prefix}.{json.dumps(k)}" if prefix else json.dumps(k), v)

    table("", data)
    return "\n".join(lines) + "\n"


def credential_file(
    spec: OAuthSpec, sentinels: Sentinels, expires_at: float | None, home: str
) -> tuple[str, bytes] | None:
    """The kit's credentialFile as the guest gets it (path with ~ as ``home``, content
    with sentinels): a JSON ``structure`` (or TOML with ``format: toml``), or the older
    text ``template``. None when the kit names none."""
    path = spec.credential_file
    if not path:
        return None
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    if spec.credential_structure is not None:
        rendered = render_structure(spec.credential_structure, sentinels, expires_at)
        assert isinstance(rendered, dict)
        if spec.credential_format == "toml":
            return path, toml_text(rendered).encode()
        return path, (json.dumps(rendered, indent=2) + "\n").encode()
    if spec.credential_template is not None:
        text = render_structure(spec.credential_template, sentinels, expires_at)
        return path, str(text).encode()
    return None
