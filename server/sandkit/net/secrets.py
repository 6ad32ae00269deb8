"""Secret values on the host: sandkit's own store (a 0600 JSON file in the config
directory) and the sources kits name (host environment variables, files with a parser).
Values never leave the host: the proxy puts them into requests, the guest gets placeholders."""

from __future__ import annotations

import json
import os
import secrets as random
from collections.abc import Mapping
from pathlib import Path

from sandkit.errors import ProxyError
from sandkit.kits.model import Credential
from sandkit.paths import config_dir

STORE_NAME = "secrets.json"


class SecretStore:
    """``sandkit secret set|ls|rm``: service → value, in a file only the user can read."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / STORE_NAME

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ProxyError(f"cannot read the secret store {self.path}: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ProxyError(
                f"the secret store {self.path} is damaged: expected a JSON object of strings"
            )
        return data

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)  # atomic: the store is never half-written

    def get(self, service: str) -> str | None:
        return self._read().get(service)

    def set(self, service: str, value: str) -> None:
        if not value:
            raise ProxyError(f"empty value for '{service}': nothing stored")
        self._write({**self._read(), service: value})

    def remove(self, service: str) -> bool:
        data = self._read()
        if data.pop(service, None) is None:
            return False
        self._write(data)
        return True

    def services(self) -> list[str]:
        return sorted(self._read())


def _from_file(path: str, parser: str) -> str | None:
    try:
        text = Path(path).expanduser().read_text()
    except OSError:
        return None
    if not parser:
        return text.strip() or None
    if not parser.startswith("json:"):
        return None
    node: object = json.loads(text) if text.strip() else None
    for key in parser[5:].split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if node is None or isinstance(node, dict | list):
        return None
    return str(node).lower() if isinstance(node, bool) else str(node)


def credential_value(
    cred: Credential, store: SecretStore, environ: Mapping[str, str] | None = None
) -> str | None:
    """The real value for a credential: the secret store first, then the kit's sources
    (env or file, in its priority order), then the host variable the kit names."""
    env = os.environ if environ is None else environ
    stored = store.get(cred.service)
    if stored:
        return stored
    src = cred.sources
    if src is not None:
        from_env = next((env[n] for n in src.env if env.get(n)), None)
        try:
            from_file = _from_file(src.file, src.parser) if src.file else None
        except ValueError:
            from_file = None  # a parser error does not fall back to another source (sbx)
            if src.priority == "file-first":
                return None
        first, second = (
            (from_file, from_env) if src.priority == "file-first" else (from_env, from_file)
        )
        return first or second
    return env.get(cred.env) or None if cred.env else None


def placeholder(service: str) -> str:
    """What the guest sees instead of the secret: recognisable, unguessable, per sandbox."""
    return f"sandkit-placeholder-{service}-{random.token_hex(16)}"
