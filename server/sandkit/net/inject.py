"""Credential injection (pure): which header a request to a host gets, and where a
placeholder must be left alone because the host is not the credential's."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sandkit.kits.model import Credential, Inject

Headers = list[tuple[str, str]]


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


def _header_value(inject: Inject, value: str) -> str:
    if inject.basic_username is not None:
        value = base64.b64encode(f"{inject.basic_username}:{value}".encode()).decode()
    return inject.format.replace("%s", value, 1)


class Injector:
    def __init__(self, bound: Iterable[BoundCredential] = ()) -> None:
        self.bound = tuple(bound)
        self._by_host: dict[str, list[tuple[BoundCredential, Inject]]] = {}
        for b in self.bound:
            for inject in b.credential.inject:
                self._by_host.setdefault(inject.domain.lower(), []).append((b, inject))

    def intercepts(self, host: str) -> bool:
        """True if requests to ``host`` carry a credential, so TLS must be terminated."""
        return host.lower().rstrip(".") in self._by_host

    def apply(
        self, host: str, target: str, headers: Sequence[tuple[str, str]], *, secure: bool
    ) -> Injection:
        """Headers for a request to ``host``. Secrets are only ever put on requests that
        go upstream over TLS (``secure``) to one of the credential's own domains."""
        host = host.lower().rstrip(".")
        mine = self._by_host.get(host, [])
        out = Injection(list(headers))
        if mine and not secure:
            out.warnings.append(
                f"no credential injected into plain-HTTP request to {host}: use https"
            )
            mine = []
        for bound, inject in mine:
            if bound.value is None:
                out.warnings.append(
                    f"no value for service '{bound.service}': "
                    f"run `sandkit secret set {bound.service}`"
                )
                continue
            name = inject.header.lower()
            out.headers = [(k, v) for k, v in out.headers if k.lower() != name]
            out.headers.append((inject.header, _header_value(inject, bound.value)))
            if bound.service not in out.injected:
                out.injected.append(bound.service)
        # A placeholder in another header (a custom format) is swapped only for its own hosts.
        own = {b.placeholder: b for b, _ in mine if b.value is not None}
        for i, (k, v) in enumerate(out.headers):
            for b in self.bound:
                if b.placeholder in v:
                    if b.placeholder in own:
                        out.headers[i] = (
                            k,
                            v.replace(b.placeholder, own[b.placeholder].value or ""),
                        )
                    else:
                        out.warnings.append(
                            f"placeholder for '{b.service}' sent to {host}, which is "
                            "not one of its domains; left as is"
                        )
        for b in self.bound:
            if b.placeholder in target:
                out.warnings.append(
                    f"placeholder for '{b.service}' in the URL to {host}; left as is"
                )
        return out
