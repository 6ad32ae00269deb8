"""OAuth tokens on the host: the real access and refresh tokens and their expiry, per
service and scope (global, or one sandbox), and each sandbox's sentinels, in one 0600
JSON file in the config directory. The guest only ever sees the sentinels.

Layout: {"tokens": {"global": {SERVICE: TOKENS}, "sandbox:NAME": {...}},
"sentinels": {NAME: {SERVICE: {"access", "refresh"}}}}."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandkit.errors import ProxyError
from sandkit.fsio import locked, write_atomic
from sandkit.net.oauth import Sentinels, Tokens, new_sentinels
from sandkit.paths import config_dir

if TYPE_CHECKING:  # the kit models cost ~0.1 s to import: annotations only
    from sandkit.kits.model import OAuthSpec

STORE_NAME = "oauth.json"
GLOBAL = "global"


def scope_of(sandbox: str | None) -> str:
    return f"sandbox:{sandbox}" if sandbox else GLOBAL


class TokenStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / STORE_NAME

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"tokens": {}, "sentinels": {}}
        except (OSError, ValueError) as exc:
            raise ProxyError(f"cannot read the token store {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise ProxyError(f"the token store {self.path} is damaged: expected a JSON object")
        tokens, sentinels = data.get("tokens"), data.get("sentinels")
        return {
            "tokens": tokens if isinstance(tokens, dict) else {},
            "sentinels": sentinels if isinstance(sentinels, dict) else {},
        }

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def _update(self) -> _Edit:
        return _Edit(self)

    # -- tokens ------------------------------------------------------------------------
    def get(self, service: str, sandbox: str | None = None) -> Tokens | None:
        """The sandbox's own tokens for ``service``, else the global ones."""
        tokens = self._read()["tokens"]
        for scope in ([scope_of(sandbox)] if sandbox else []) + [GLOBAL]:
            entry = tokens.get(scope, {}).get(service)
            if isinstance(entry, dict) and (found := Tokens.from_json(entry)) is not None:
                return found
        return None

    def scope_holding(self, service: str, sandbox: str | None) -> str:
        """Where a new answer for ``service`` goes: the sandbox's scope if it has its own
        entry, else global (a sign-in in one sandbox serves the next)."""
        if sandbox and service in self._read()["tokens"].get(scope_of(sandbox), {}):
            return scope_of(sandbox)
        return GLOBAL

    def put(self, service: str, tokens: Tokens, scope: str = GLOBAL) -> None:
        with self._update() as data:
            data["tokens"].setdefault(scope, {})[service] = tokens.to_json()

    def remove(self, service: str, sandbox: str | None = None) -> bool:
        with self._update() as data:
            found = data["tokens"].get(scope_of(sandbox), {}).pop(service, None)
        return found is not None

    def entries(self) -> Iterator[tuple[str, str, Tokens]]:
        """(scope, service, tokens) for every stored entry."""
        for scope, services in sorted(self._read()["tokens"].items()):
            if not isinstance(services, dict):
                continue
            for service, entry in sorted(services.items()):
                if isinstance(entry, dict) and (found := Tokens.from_json(entry)) is not None:
                    yield scope, service, found

    # -- sentinels ---------------------------------------------------------------------
    def sentinels(self, sandbox: str, service: str, spec: OAuthSpec) -> Sentinels:
        """This sandbox's sentinels for ``service``: made once, then the same across
        restarts (the guest's credential file keeps working)."""
        with self._update() as data:
            mine = data["sentinels"].setdefault(sandbox, {})
            entry = mine.get(service)
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("access"), str)
                and isinstance(entry.get("refresh"), str)
            ):
                return Sentinels(entry["access"], entry["refresh"])
            made = new_sentinels(service, spec)
            mine[service] = {"access": made.access, "refresh": made.refresh}
            return made

    def forget_sandbox(self, sandbox: str) -> None:
        if not self.path.exists():
            return
        with self._update() as data:
            data["sentinels"].pop(sandbox, None)
            data["tokens"].pop(scope_of(sandbox), None)


class _Edit:
    """Read, change and write the store under its lock (several supervisors share it)."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self._lock = locked(store.path.with_name(f".{store.path.name}.lock"))
        self._data: dict[str, Any] = {}

    def __enter__(self) -> dict[str, Any]:
        self.store.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock.__enter__()
        self._data = self.store._read()
        return self._data

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            if kind is None:
                self.store._write(self._data)
        finally:
            self._lock.__exit__(None, None, None)
