from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sandkit.errors import ProxyError
from sandkit.kits.model import Credential, CredentialSource, Origin
from sandkit.net.secrets import SecretStore, credential_value, placeholder

ORIGIN = Origin(kit="k", file="f", line=1, column=1)


def cred(sources: CredentialSource | None = None, env: str | None = "SVC_KEY") -> Credential:
    return Credential(service="svc", env=env, sources=sources, origin=ORIGIN)


def test_store(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "cfg" / "secrets.json")
    assert store.services() == [] and store.get("svc") is None
    store.set("svc", "v1")
    store.set("other", "v2")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.services() == ["other", "svc"] and store.get("svc") == "v1"
    assert store.remove("svc") and not store.remove("svc")
    with pytest.raises(ProxyError, match="empty value"):
        store.set("x", "")
    store.path.write_text("[1]")
    with pytest.raises(ProxyError, match="is damaged"):
        store.get("x")


def test_store_beats_env(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "s.json")
    assert credential_value(cred(), store, {"SVC_KEY": "from-env"}) == "from-env"
    store.set("svc", "from-store")
    assert credential_value(cred(), store, {"SVC_KEY": "from-env"}) == "from-store"
    assert credential_value(cred(env=None), SecretStore(tmp_path / "none.json"), {}) is None


def test_sources_env_file_parser_priority(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "s.json")
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps({"github": {"oauth_token": "from-file", "n": 5}}))
    plain = tmp_path / "token"
    plain.write_text("  whole-file \n")
    env = {"B": "from-b"}
    env_first = CredentialSource(env=("A", "B"), file=str(hosts), parser="json:github.oauth_token")
    assert credential_value(cred(env_first), store, env) == "from-b"
    file_first = env_first.model_copy(update={"priority": "file-first"})
    assert credential_value(cred(file_first), store, env) == "from-file"
    assert credential_value(cred(CredentialSource(file=str(plain))), store, {}) == "whole-file"
    number = CredentialSource(file=str(hosts), parser="json:github.n")
    assert credential_value(cred(number), store, {}) == "5"
    missing = CredentialSource(file=str(hosts), parser="json:github.nope")
    assert credential_value(cred(missing), store, {}) is None
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    no_fallback = CredentialSource(
        env=("B",), file=str(broken), parser="json:a", priority="file-first"
    )
    assert credential_value(cred(no_fallback), store, env) is None  # parser errors don't fall back


def test_placeholders_are_unique_and_name_the_service() -> None:
    a, b = placeholder("openai"), placeholder("openai")
    assert a != b and a.startswith("sandkit-placeholder-openai-")
