"""What the host is configured to use for packages: its Debian mirror (apt sources), its
Python package index (pip) and its npm registry. Read at run time, never written into
the project, so sandboxes use the same mirrors the host does."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from sandkit.fsio import write_atomic

if TYPE_CHECKING:
    from sandkit.kits.model import Credential

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
    """A tool's answer, asked from a folder of sandkit's own: never from the current
    directory, whose .npmrc (or a `pip` package, for `python -m pip`) belongs to whatever
    repository the user stands in, not to the user's configuration."""
    from sandkit.paths import cache_dir

    quiet = cache_dir()
    try:
        quiet.mkdir(parents=True, exist_ok=True, mode=0o700)
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=quiet
        )
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


@dataclass(frozen=True)
class Login:
    """The user:password of a registry URL. The proxy sends it (Basic auth) to that
    registry; the guest only ever sees the URL without it."""

    host: str
    username: str
    password: str
    source: str  # where it was configured, for the decision log


def split_login(url: str, source: str) -> tuple[str, Login | None]:
    """``url`` without its userinfo, and the login that was in it (if any)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    bare = urlunsplit(parts._replace(netloc=hostport))
    user, _, password = userinfo.partition(":")
    host = host_of(bare)
    if not host:
        return bare, None
    return bare, Login(host, unquote(user), unquote(password), source)


_NPM_USER = "~/.npmrc"
NPM_FILES = (_NPM_USER, "/etc/npmrc", "/usr/etc/npmrc")
PIP_FILES = ("~/.config/pip/pip.conf", "~/.pip/pip.conf", "/etc/pip.conf", "/etc/xdg/pip/pip.conf")


def _env(name: str) -> str | None:
    """npm reads its variables in any case (npm_config_x, NPM_CONFIG_X)."""
    found = [v for k, v in os.environ.items() if k.lower() == name.lower()]
    return found[-1] if found else None


def _npmrc_value(path: Path, key: str) -> str | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    value = None
    for line in text.splitlines():
        name, sep, raw = line.strip().partition("=")
        if sep and not name.startswith((";", "#")) and name.strip() == key:
            value = raw.strip().strip("\"'")
    if value is None:
        return None
    # npmrc values may name variables: registry=https://${NPM_USER}:${NPM_TOKEN}@host/
    return re.sub(r"\$\{([^}?]+)\??\}", lambda m: os.environ.get(m.group(1), ""), value)


def _npm_config_files() -> list[Path]:
    """The user's and the machine's npmrc, in npm's order; never a project's."""
    user = _env("npm_config_userconfig") or _NPM_USER
    machine = _env("npm_config_globalconfig")
    return [Path(p).expanduser() for p in (user, *([machine] if machine else NPM_FILES[1:]))]


def _npm_configured_registry() -> tuple[str, str] | None:
    """The registry the user configured (environment, then npmrc files) and where."""
    value = _env("npm_config_registry")
    if value:
        return value, "npm_config_registry"
    for path in _npm_config_files():
        value = _npmrc_value(path, "registry")
        if value:
            return value, str(path)
    return None


def npm_registry() -> tuple[str, str] | None:
    """npm's registry URL (perhaps with a login in it) and where it comes from."""
    if shutil.which("npm") is None:
        return None
    configured = _npm_configured_registry()
    if configured is not None and "@" in urlsplit(configured[0]).netloc:
        return configured  # npm refuses to print a registry URL that holds a password
    value = _run(["npm", "config", "get", "registry"]).strip()
    return (value, configured[1] if configured else "npm") if value else None


def pip_index_urls() -> list[str]:
    """The index URL pip uses (configured, else its built-in default) and extra indexes."""
    index: str | None = None
    extra: list[str] = []
    # -I: `python -m` would otherwise import a `pip` from the current directory first.
    for line in _run([sys.executable, "-I", "-m", "pip", "config", "list"]).splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        words = value.strip().strip("'\"").split()
        if name == "index-url" and words:
            index = words[0]  # pip lists files, then the environment: the last one wins
        elif name == "extra-index-url":
            extra.extend(words)
    urls = [index or _pip_default_index(), *extra]
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


def _config_fingerprint() -> str:
    """The files and variables pip's and npm's answers depend on (and nothing else: the
    current directory is not one of them)."""
    parts: list[object] = [
        FORMAT,
        sorted(
            (k, v) for k, v in os.environ.items() if k.upper().startswith(("PIP_", "NPM_CONFIG_"))
        ),
    ]
    site = Path(sys.prefix) / "pip.conf"
    pip_file = os.environ.get("PIP_CONFIG_FILE")
    for path in [
        *(Path(n).expanduser() for n in (*PIP_FILES, *([pip_file] if pip_file else []))),
        site,
        *_npm_config_files(),
    ]:
        try:
            st = path.stat()
            parts.append([str(path), st.st_mtime_ns, st.st_size])
        except OSError:
            parts.append([str(path)])
    parts.append([shutil.which("npm"), sys.executable])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


FORMAT = 4  # of the memo: a change makes old memos stale (4: logins kept apart, 0600)
MEMO = "registries.json"


def registry_hosts(values: dict[str, str]) -> list[str]:
    """The host names among registry_args' values (the rest are URLs)."""
    return [v for k, v in values.items() if k.endswith("Host")]


def registry_args() -> dict[str, str]:
    """Values for the kit args that built-in kits use for package registries: URLs
    without any login in them (those go to the guest)."""
    return dict(_answers()[0])


def registry_logins() -> dict[str, Login]:
    """The logins that were in the host's registry URLs, by registry host."""
    return dict(_answers()[1])


def _memo_path() -> Path:
    from sandkit.paths import cache_dir

    return cache_dir() / MEMO


def _read_memo(path: Path, fingerprint: str) -> tuple[dict[str, str], dict[str, Login]] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd) as f:
            info = os.fstat(f.fileno())
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                return None  # not ours alone (an older sandkit wrote it 0644): ask again
            known = json.load(f)
        if known["fingerprint"] != fingerprint:
            return None
        values = {str(k): str(v) for k, v in known["values"].items()}
        logins = {
            str(h): Login(**{k: str(x) for k, x in v.items()}) for h, v in known["logins"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return values, logins


def _write_memo(path: Path, data: dict[str, object]) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, json.dumps(data).encode())  # 0600: it holds registry passwords


@functools.cache
def _answers() -> tuple[dict[str, str], dict[str, Login]]:
    """Asking pip and npm costs ~0.3 s, so answers are kept until their configuration
    changes, in a file only the user can read."""
    memo = _memo_path()
    fingerprint = _config_fingerprint()
    known = _read_memo(memo, fingerprint)
    if known is not None:
        return known
    values, logins = _registry_answers()
    _write_memo(
        memo,
        {
            "fingerprint": fingerprint,
            "values": values,
            "logins": {h: asdict(login) for h, login in logins.items()},
        },
    )
    return values, logins


def _registry_answers() -> tuple[dict[str, str], dict[str, Login]]:
    logins: dict[str, Login] = {}

    def bare(url: str | None, source: str) -> str | None:
        if not url:
            return None
        clean, login = split_login(url, source)
        if login is not None:  # one login a host: the first (pip's) if npm names another
            logins.setdefault(login.host, login)
        return clean

    index = pip_index_urls()
    pypi = bare(index[0], "pip's index-url") if index else None
    npm = npm_registry()
    npm_url = bare(npm[0], f"npm's registry ({npm[1]})") if npm else None
    index_host = host_of(pypi)
    default_index = host_of(_pip_default_index())
    files_host = pip_files_host() if index_host == default_index else index_host
    values = {
        "npmRegistry": npm_url,
        "npmRegistryHost": host_of(npm_url),
        "pypiIndex": pypi,
        "pypiIndexHost": index_host,
        "pypiFilesHost": files_host,
        "debianMirrorHost": host_of(debian_mirror()),
    }
    return {k: v for k, v in values.items() if v}, logins


def registry_credentials(values: dict[str, str]) -> list[tuple[Credential, str]]:
    """Credentials (with their values) the proxy injects for the registries in
    ``values``: Basic auth from the logins in the host's registry URLs. No variable or
    placeholder goes to the guest: the proxy adds the header to every request to that
    registry, over TLS (it terminates TLS for hosts that carry a credential)."""
    from sandkit.kits.model import Credential, Inject, Origin

    logins = registry_logins()
    found: list[tuple[Credential, str]] = []
    for host in dict.fromkeys(registry_hosts(values)):
        login = logins.get(host)
        if login is None:
            continue
        if login.password:
            inject = Inject(
                domain=host,
                header="Authorization",
                format="Basic %s",
                basic_username=login.username,
            )
            value = login.password
        else:  # a token as the user name (https://TOKEN@host/): pip sends "TOKEN:"
            inject = Inject(domain=host, header="Authorization", format="Basic %s")
            value = base64.b64encode(f"{login.username}:".encode()).decode()
        credential = Credential(
            service=f"registry-{host}",
            description=f"login for {host} from {login.source}",
            proxy_managed=True,
            inject=(inject,),
            origin=Origin(kit="host", file=login.source, line=0, column=0),
        )
        found.append((credential, value))
    return found
