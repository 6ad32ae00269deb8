"""What the host is configured to use for packages: its Debian mirror (apt sources), its
Python package index (pip) and its npm registry. Read at run time, never written into
the project, so sandboxes use the same mirrors the host does."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

APT_SOURCES = Path("/etc/apt")
TIMEOUT = 10


def apt_mirrors(root: Path = APT_SOURCES) -> list[str]:
    """Base URLs of the host's Debian archives, in the order apt reads them."""
    urls: list[str] = []
    files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                if re.search(r"^Enabled:\s*no", stanza, re.M | re.I):
                    continue
                for line in stanza.splitlines():
                    if line.lower().startswith("uris:"):
                        urls += line.split(":", 1)[1].split()
        elif path.suffix == ".list":
            for line in text.splitlines():
                fields = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(fields) >= 2 and fields[0] == "deb":
                    urls.append(fields[1])
    return list(dict.fromkeys(u.rstrip("/") for u in urls if u.startswith(("http://", "https://"))))


def debian_mirror(root: Path = APT_SOURCES) -> str | None:
    """The first Debian mirror that is not a security archive."""
    mirrors = apt_mirrors(root)
    plain = [u for u in mirrors if "security" not in u] or mirrors
    return plain[0] if plain else None


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def local_cas(root: Path = LOCAL_CAS) -> bytes:
    """The CAs this machine's administrator added to its trust store (Debian's place for
    them): a company's TLS-inspection CA lives there, and without it nothing in a sandbox
    could reach the package registries that the host reaches."""
    pems = []
    for path in sorted(root.rglob("*.crt")) if root.is_dir() else []:
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            if b"-----BEGIN CERTIFICATE-----" in data:
                pems.append(data.strip() + b"\n")
    return b"".join(pems)


def npm_registry() -> str | None:
    if shutil.which("npm") is None:
        return None
    value = _run(["npm", "config", "get", "registry"]).strip()
    return value or None


def pip_index_urls() -> list[str]:
    """The index URL pip uses (configured, else its built-in default) and extra indexes."""
    found: dict[str, list[str]] = {}
    for line in _run([sys.executable, "-m", "pip", "config", "list"]).splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in ("index-url", "extra-index-url"):
            found.setdefault(name, []).extend(value.strip("'\"").split())
    index = found.get("index-url") or [_pip_default_index()]
    urls = [*index, *found.get("extra-index-url", [])]
    return [u for u in urls if u.startswith(("http://", "https://"))]


def _pip_default_index() -> str:
    try:
        from pip._internal.models.index import PyPI  # pip's own default

        return str(PyPI.simple_url)
    except ImportError:
        return ""


def pip_files_host() -> str | None:
    """The host pip's default index serves files from (PyPI splits index and files)."""
    try:
        from pip._internal.models.index import PyPI

        return str(PyPI.file_storage_domain)
    except ImportError:
        return None


def host_of(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None


NPM_FILES = ("~/.npmrc", "/etc/npmrc", "/usr/etc/npmrc")
PIP_FILES = ("~/.config/pip/pip.conf", "~/.pip/pip.conf", "/etc/pip.conf", "/etc/xdg/pip/pip.conf")


def _config_fingerprint() -> str:
    """The files and variables pip's and npm's answers depend on."""
    parts: list[object] = [
        FORMAT,
        sorted(
            (k, v) for k, v in os.environ.items() if k.upper().startswith(("PIP_", "NPM_CONFIG_"))
        ),
    ]
    for name in (*NPM_FILES, *PIP_FILES):
        path = Path(name).expanduser()
        try:
            st = path.stat()
            parts.append([str(path), st.st_mtime_ns, st.st_size])
        except OSError:
            parts.append([str(path)])
    parts.append([shutil.which("npm"), sys.executable])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


FORMAT = 3  # of the values registry_args returns: a change makes the memo stale


def registry_hosts(values: dict[str, str]) -> list[str]:
    """The host names among registry_args' values (the rest are URLs)."""
    return [v for k, v in values.items() if k.endswith("Host")]


@functools.cache
def registry_args() -> dict[str, str]:
    """Values for the kit args that built-in kits use for package registries. Asking pip
    and npm costs ~0.3 s, so answers are kept until their configuration changes."""
    from sandkit.paths import cache_dir

    memo = cache_dir() / "registries.json"
    fingerprint = _config_fingerprint()
    try:
        known = json.loads(memo.read_text())
        if known["fingerprint"] == fingerprint:
            return {str(k): str(v) for k, v in known["values"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    values = _registry_args()
    with contextlib.suppress(OSError):
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "values": values}))
        tmp.replace(memo)
    return values


def _registry_args() -> dict[str, str]:
    index = pip_index_urls()
    index_host = host_of(index[0]) if index else None
    default_index = host_of(_pip_default_index())
    files_host = pip_files_host() if index_host == default_index else index_host
    values = {
        "npmRegistry": npm_registry(),
        "npmRegistryHost": host_of(npm_registry()),
        "pypiIndex": index[0] if index else None,
        "pypiIndexHost": index_host,
        "pypiFilesHost": files_host,
        "debianMirrorHost": host_of(debian_mirror()),
    }
    return {k: v for k, v in values.items() if v}
