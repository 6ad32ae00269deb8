"""Credential injection (pure): which header a request to a host gets, and where a
placeholder must be left alone.

A secret goes only into the header its credential names, only on requests to that
credential's own domains, only over TLS. A placeholder anywhere else (another header such
as Origin or Referer, the URL) stays a placeholder: a server may reflect those back, and
the reflection would carry the real secret into the sandbox.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sandkit.kits.model import Credential, Inject
from sandkit.net.scrub import Needle, Scrubber

Headers = list[tuple[str, str]]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # a header name (RFC 9110 §5.1)
# An injected value is visible ASCII, space or tab. CR and LF would start a new header (or
# the body), NUL cuts the value short in many servers; other bytes would be sent in an
# encoding the response scrubber does not look for.
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e]")


@dataclass(frozen=True)
class BoundCredential:
    """A credential with its real value (None: not set on the host) and its placeholder."""

    credential: Credential
    value: str | None
    placeholder: str

    @property
    def service(self) -> str:
        return self.credential.service


@dataclass
class Injection:
    headers: Headers
    injected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _basic(username: str, value: str) -> str:
    return base64.b64encode(f"{username}:{value}".encode()).decode()


def _header_value(inject: Inject, value: str) -> str:
    if inject.basic_username is not None:
        value = _basic(inject.basic_username, value)
    return inject.format.replace("%s", value, 1)


def _refusal(service: str, header: str, value: str) -> str | None:
    """Why ``value`` must not be sent as header ``header``, in words for the user."""
    if not _TOKEN.match(header):
        return (
            f"credential '{service}' names the header {header!r}, which is not a valid "
            "header name; nothing injected: fix the kit's inject.header"
        )
    bad = _BAD_VALUE.search(value)
    if bad is None:
        return None
    what = {"\r": "a carriage return", "\n": "a line feed", "\x00": "a NUL byte"}.get(
        bad.group(), "a character a header cannot carry"
    )
    return (
        f"the value for '{service}' holds {what}; nothing injected into {header}, "
        f"so it cannot add headers of its own: store the bare secret with "
        f"`sandkit secret set {service}`"
    )


class Injector:
    def __init__(self, bound: Iterable[BoundCredential] = ()) -> None:
        self.bound = tuple(bound)
        self._by_host: dict[str, list[tuple[BoundCredential, Inject]]] = {}
        needles: list[Needle] = []
        for b in self.bound:
            for inject in b.credential.inject:
                self._by_host.setdefault(inject.domain.lower().rstrip("."), []).append((b, inject))
            if b.value:
                placeholder = b.placeholder.encode()
                needles.append(Needle(b.value.encode(), placeholder, b.service))
                # What actually went upstream for Basic auth: base64 of "user:secret",
                # from which the secret is one decode away.
                for inject in b.credential.inject:
                    if inject.basic_username is not None:
                        token = _basic(inject.basic_username, b.value).encode()
                        needles.append(Needle(token, placeholder, b.service))
        self.scrubber = Scrubber(needles)

    def intercepts(self, host: str) -> bool:
        """True if requests to ``host`` carry a credential, so TLS must be terminated."""
        return host.lower().rstrip(".") in self._by_host

    def apply(
        self, host: str, target: str, headers: Sequence[tuple[str, str]], *, secure: bool
    ) -> Injection:
        """Headers for a request to ``host``. Secrets are only ever put on requests that
        go upstream over TLS (``secure``) to one of the credential's own domains, and only
        into the header each credential names."""
        host = host.lower().rstrip(".")
        mine = self._by_host.get(host, [])
        out = Injection(list(headers))
        if mine and not secure:
            out.warnings.append(
                f"no credential injected into plain-HTTP request to {host}: use https"
            )
            mine = []
        named: set[str] = set()  # header names now holding a real value
        for bound, inject in mine:
            if bound.value is None:
                out.warnings.append(
                    f"no value for service '{bound.service}': "
                    f"run `sandkit secret set {bound.service}`"
                )
                continue
            value = _header_value(inject, bound.value)
            refusal = _refusal(bound.service, inject.header, value)
            if refusal is not None:
                out.warnings.append(refusal)
                continue
            name = inject.header.lower()
            out.headers = [(k, v) for k, v in out.headers if k.lower() != name]
            out.headers.append((inject.header, value))
            named.add(name)
            if bound.service not in out.injected:
                out.injected.append(bound.service)
        everyone = self._by_host.get(host, [])
        own = {b.service for b, _ in everyone}
        for k, v in out.headers:
            if k.lower() in named:
                continue
            for b in self.bound:
                if b.placeholder not in v:
                    continue
                if b.service not in own:
                    out.warnings.append(
                        f"placeholder for '{b.service}' sent to {host}, which is "
                        "not one of its domains; left as is"
                    )
                elif secure and k.lower() not in (names := _headers_of(everyone, b)):
                    out.warnings.append(
                        f"placeholder for '{b.service}' in header {k} to {host}: only "
                        f"{' or '.join(sorted(names.values()))} carries the credential; "
                        "left as is"
                    )
                # else: its own header, not injected, and the reason is already a warning
        for b in self.bound:
            if b.placeholder in target:
                out.warnings.append(
                    f"placeholder for '{b.service}' in the URL to {host}; left as is"
                )
        return out


def _headers_of(
    injects: list[tuple[BoundCredential, Inject]], bound: BoundCredential
) -> dict[str, str]:
    """The headers ``bound`` goes into, lower-cased name → name as the kit wrote it."""
    return {i.header.lower(): i.header for b, i in injects if b is bound}
