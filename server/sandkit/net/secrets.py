"""Secret values on the host: sandkit's own store (a 0600 JSON file in the config
directory), and host sources the user allowed for a service. Values never leave the host:
the proxy puts them into requests, the guest gets placeholders.

A kit names credentials by service; it does not choose which host data becomes a secret.
The host variables and files a kit names are read only when the user allowed them: a
variable once per service (`sandkit secret set SERVICE --from-env VAR`), a file once per
kit version (`sandkit secret allow-file SERVICE --kit KIT`, remembered by the digest of the
kit's spec). Kits that ship with sandkit are trusted with their own sources. Reads are of
regular files only, at most 64 KiB."""

from __future__ import annotations

import hashlib
import json
import os
import secrets as random
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandkit.errors import ProxyError
from sandkit.fsio import write_atomic
from sandkit.logs import logger
from sandkit.paths import config_dir

if TYPE_CHECKING:  # the kit models cost ~0.1 s to import: annotations only
    from sandkit.kits.model import Credential

log = logger(__name__)

STORE_NAME = "secrets.json"
GRANTS_NAME = "credential-sources.json"
MAX_SOURCE_BYTES = 64 << 10


class SecretStore:
    """``sandkit secret set|ls|rm``: service → value, in a file only the user can read.
    With ``sandbox``, the scope is that sandbox's own file (``secret set --sandbox``),
    and ``get`` falls back to the global store."""

    def __init__(self, path: Path | None = None, sandbox: str | None = None) -> None:
        self.global_path = path or config_dir() / STORE_NAME
        self.sandbox = sandbox
        self.path = (
            self.global_path.parent / "sandbox-secrets" / f"{sandbox}.json"
            if sandbox
            else self.global_path
        )

    def _read(self, path: Path | None = None) -> dict[str, str]:
        path = path or self.path
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ProxyError(f"cannot read the secret store {path}: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ProxyError(
                f"the secret store {path} is damaged: expected a JSON object of strings"
            )
        return data

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def get(self, service: str) -> str | None:
        value = self._read().get(service)
        if value is None and self.sandbox:
            value = self._read(self.global_path).get(service)
        return value

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


class SourceGrants:
    """Host sources the user allowed: {"env": {service: [VAR]}, "files": {service:
    [{"path", "kit"}]}} in a 0600 file; "kit" is the digest of the kit that asked."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / GRANTS_NAME

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"env": {}, "files": {}}
        except (OSError, ValueError) as exc:
            raise ProxyError(f"cannot read {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise ProxyError(f"{self.path} is damaged: expected a JSON object")
        return {"env": data.get("env") or {}, "files": data.get("files") or {}}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def env_allowed(self, service: str, var: str) -> bool:
        return var in self._read()["env"].get(service, [])

    def allow_env(self, service: str, var: str) -> None:
        data = self._read()
        data["env"][service] = sorted({*data["env"].get(service, []), var})
        self._write(data)

    def file_allowed(self, service: str, path: str, kit: str) -> bool:
        wanted = {"path": path, "kit": kit}
        return wanted in self._read()["files"].get(service, [])

    def allow_file(self, service: str, path: str, kit: str) -> None:
        data = self._read()
        entries = [e for e in data["files"].get(service, []) if e.get("path") != path]
        data["files"][service] = [*entries, {"path": path, "kit": kit}]
        self._write(data)


def kit_digest(spec_file: str) -> str:
    """The digest a file approval is remembered by: the kit's spec (or its zip) as it is
    now, so that a changed kit asks again."""
    path = Path(spec_file.split("!", 1)[0])
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def is_builtin(spec_file: str) -> bool:
    from sandkit.kits.builtin import builtin_dir

    try:
        return Path(spec_file).resolve().is_relative_to(builtin_dir().resolve())
    except OSError:
        return False


def read_source(path: str) -> str:
    """A credential file's text: a regular file of at most 64 KiB (never a device, fifo
    or /dev/zero that would be read without end). Raises ValueError saying why not."""
    try:
        fd = os.open(Path(path).expanduser(), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"cannot open {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file")
        data = os.read(fd, MAX_SOURCE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SOURCE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_SOURCE_BYTES >> 10} KiB")
    return data.decode("utf-8", "replace")


def _from_file(path: str, parser: str) -> str | None:
    try:
        text = read_source(path)
    except ValueError as exc:
        log.warning("credential file not read: %s", exc)
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


@dataclass(frozen=True)
class FileSource:
    """A host file a kit names as a credential's source, not yet allowed."""

    service: str
    path: str
    kit_file: str
    digest: str
    domains: tuple[str, ...]

    def question(self) -> str:
        return (
            f"The kit {self.kit_file} wants to read {self.path} as the '{self.service}' "
            f"credential, sent to: {', '.join(self.domains) or '(no domain)'}. Allow it for "
            "this version of the kit?"
        )


def unallowed_file_sources(
    credentials: Iterable[Credential], grants: SourceGrants | None = None
) -> list[FileSource]:
    """The file sources among ``credentials`` that need a person's yes (the CLI asks in
    `secret allow-file`, the editor when it opens a workspace)."""
    grants = grants or SourceGrants()
    out = []
    for cred in credentials:
        src = cred.sources
        if src is None or not src.file or is_builtin(cred.origin.file):
            continue
        kit_file = cred.origin.file.split("!", 1)[0]
        digest = kit_digest(cred.origin.file)
        if not grants.file_allowed(cred.service, src.file, digest):
            domains = tuple(sorted({i.domain for i in cred.inject}))
            out.append(FileSource(cred.service, src.file, kit_file, digest, domains))
    return out


@dataclass
class Lookup:
    value: str | None
    notes: list[str] = field(default_factory=list)  # sources skipped, and how to allow them


def credential_lookup(
    cred: Credential,
    store: SecretStore,
    environ: Mapping[str, str] | None = None,
    grants: SourceGrants | None = None,
) -> Lookup:
    """The real value for a credential: the secret store first, then the host sources
    the kit names that the user allowed (env or file, in the kit's priority order)."""
    env = os.environ if environ is None else environ
    out = Lookup(store.get(cred.service) or None)
    if out.value:
        return out
    grants = grants or SourceGrants()
    trusted = is_builtin(cred.origin.file)
    service = cred.service

    def from_env(names: tuple[str, ...]) -> str | None:
        for name in names:
            if not env.get(name):
                continue
            if trusted or grants.env_allowed(service, name):
                return env[name]
            out.notes.append(
                f"the kit names host variable {name} for '{service}'; it is not read until "
                f"you allow it: `sandkit secret set {service} --from-env {name}`"
            )
        return None

    src = cred.sources
    if src is None:
        out.value = from_env((cred.env,)) if cred.env else None
        return out
    value_env = from_env(src.env)
    value_file = None
    if src.file:
        if trusted or grants.file_allowed(service, src.file, kit_digest(cred.origin.file)):
            try:
                value_file = _from_file(src.file, src.parser)
            except ValueError:
                value_file = None  # a parser error does not fall back to another source (sbx)
                if src.priority == "file-first":
                    return out
        else:
            out.notes.append(
                f"the kit reads '{service}' from {src.file}; it is not read until you allow "
                f"it for this kit: `sandkit secret allow-file {service} --kit "
                f"{cred.origin.file.split('!', 1)[0]}`"
            )
    first, second = (
        (value_file, value_env) if src.priority == "file-first" else (value_env, value_file)
    )
    out.value = first or second
    return out


def credential_value(
    cred: Credential,
    store: SecretStore,
    environ: Mapping[str, str] | None = None,
    grants: SourceGrants | None = None,
) -> str | None:
    lookup = credential_lookup(cred, store, environ, grants)
    for note in lookup.notes:
        log.warning("%s", note)
    return lookup.value


def placeholder(service: str) -> str:
    """What the guest sees instead of the secret: recognisable, unguessable, per sandbox."""
    return f"sandkit-placeholder-{service}-{random.token_hex(16)}"
