from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sandkit.errors import ProxyError
from sandkit.kits.model import Credential, CredentialSource, Origin
from sandkit.net.secrets import (
    SecretStore,
    SourceGrants,
    credential_lookup,
    credential_value,
    kit_digest,
    placeholder,
)

ORIGIN = Origin(kit="k", file="f", line=1, column=1)


@pytest.fixture
def grants(tmp_path: Path) -> SourceGrants:
    """Every source these tests read, allowed by the user."""
    g = SourceGrants(tmp_path / "grants.json")
    for var in ("SVC_KEY", "A", "B"):
        g.allow_env("svc", var)
    return g


def allow_files(g: SourceGrants, *paths: Path) -> SourceGrants:
    for path in paths:
        g.allow_file("svc", str(path), kit_digest(ORIGIN.file))
    return g


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


def test_store_beats_env(tmp_path: Path, grants: SourceGrants) -> None:
    store = SecretStore(tmp_path / "s.json")
    assert credential_value(cred(), store, {"SVC_KEY": "from-env"}, grants) == "from-env"
    store.set("svc", "from-store")
    assert credential_value(cred(), store, {"SVC_KEY": "from-env"}, grants) == "from-store"
    none = SecretStore(tmp_path / "none.json")
    assert credential_value(cred(env=None), none, {}, grants) is None


def test_sources_env_file_parser_priority(tmp_path: Path, grants: SourceGrants) -> None:
    store = SecretStore(tmp_path / "s.json")
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps({"github": {"oauth_token": "from-file", "n": 5}}))
    plain = tmp_path / "token"
    plain.write_text("  whole-file \n")
    broken = tmp_path / "broken.json"
    allow_files(grants, hosts, plain, broken)
    env = {"B": "from-b"}
    env_first = CredentialSource(env=("A", "B"), file=str(hosts), parser="json:github.oauth_token")
    assert credential_value(cred(env_first), store, env, grants) == "from-b"
    file_first = env_first.model_copy(update={"priority": "file-first"})
    assert credential_value(cred(file_first), store, env, grants) == "from-file"
    assert (
        credential_value(cred(CredentialSource(file=str(plain))), store, {}, grants) == "whole-file"
    )
    number = CredentialSource(file=str(hosts), parser="json:github.n")
    assert credential_value(cred(number), store, {}, grants) == "5"
    missing = CredentialSource(file=str(hosts), parser="json:github.nope")
    assert credential_value(cred(missing), store, {}, grants) is None
    broken.write_text("{")
    no_fallback = CredentialSource(
        env=("B",), file=str(broken), parser="json:a", priority="file-first"
    )
    assert (
        credential_value(cred(no_fallback), store, env, grants) is None
    )  # parser errors don't fall back


def test_placeholders_are_unique_and_name_the_service() -> None:
    a, b = placeholder("openai"), placeholder("openai")
    assert a != b and a.startswith("sandkit-placeholder-openai-")


# -- a kit does not choose which host data becomes a secret ---------------------------------
def test_a_kit_cannot_read_a_host_variable_the_user_did_not_allow(tmp_path: Path) -> None:
    store, grants = SecretStore(tmp_path / "s.json"), SourceGrants(tmp_path / "g.json")
    env = {"AWS_SECRET_ACCESS_KEY": "host-secret"}
    looked = credential_lookup(cred(env="AWS_SECRET_ACCESS_KEY"), store, env, grants)
    assert looked.value is None
    assert "sandkit secret set svc --from-env AWS_SECRET_ACCESS_KEY" in looked.notes[0]
    grants.allow_env("svc", "AWS_SECRET_ACCESS_KEY")
    assert credential_value(cred(env="AWS_SECRET_ACCESS_KEY"), store, env, grants) == "host-secret"
    grants.allow_env("other", "X")  # a grant for one service is not one for another
    assert credential_value(cred(env="X"), store, {"X": "x"}, grants) is None


def test_a_kit_cannot_read_a_host_file_the_user_did_not_allow_for_it(tmp_path: Path) -> None:
    store, grants = SecretStore(tmp_path / "s.json"), SourceGrants(tmp_path / "g.json")
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    spec = tmp_path / "kit" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text("name: k\n")
    origin = Origin(kit="k", file=str(spec), line=1, column=1)
    c = Credential(service="svc", sources=CredentialSource(file=str(key)), origin=origin)
    looked = credential_lookup(c, store, {}, grants)
    assert looked.value is None and f"--kit {spec}" in looked.notes[0]
    grants.allow_file("svc", str(key), kit_digest(str(spec)))
    assert credential_value(c, store, {}, grants) is not None
    spec.write_text("name: k\n# changed\n")  # a new version of the kit asks again
    assert credential_value(c, store, {}, grants) is None


@pytest.mark.parametrize("source", ["/dev/zero", "/dev/urandom", "big"])
def test_credential_files_are_small_regular_files(
    tmp_path: Path, grants: SourceGrants, source: str
) -> None:
    path = tmp_path / "big" if source == "big" else Path(source)
    if source == "big":
        path.write_bytes(b"x" * (65 << 10))
    allow_files(grants, path)
    c = cred(CredentialSource(file=str(path)), env=None)
    assert credential_value(c, SecretStore(tmp_path / "s.json"), {}, grants) is None


def test_kits_that_ship_with_sandkit_keep_their_own_sources(tmp_path: Path) -> None:
    from sandkit.kits.builtin import builtin_dir

    origin = Origin(
        kit="claude", file=str(builtin_dir() / "claude" / "spec.yaml"), line=1, column=1
    )
    c = Credential(service="anthropic", env="ANTHROPIC_API_KEY", origin=origin)
    grants = SourceGrants(tmp_path / "g.json")
    value = credential_value(
        c, SecretStore(tmp_path / "s.json"), {"ANTHROPIC_API_KEY": "k"}, grants
    )
    assert value == "k"


def test_file_sources_waiting_for_a_person_are_listed_until_allowed(tmp_path: Path) -> None:
    from sandkit.kits.model import Inject
    from sandkit.net.secrets import unallowed_file_sources

    spec = tmp_path / "kit" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text("name: k\n")
    origin = Origin(kit="k", file=str(spec), line=1, column=1)
    c = Credential(
        service="svc",
        sources=CredentialSource(file="~/.config/tool/token"),
        inject=(Inject(domain="api.test", header="X-Key"),),
        origin=origin,
    )
    grants = SourceGrants(tmp_path / "g.json")
    [waiting] = unallowed_file_sources([c], grants)
    assert waiting.domains == ("api.test",) and "~/.config/tool/token" in waiting.question()
    grants.allow_file(waiting.service, waiting.path, waiting.digest)
    assert unallowed_file_sources([c], grants) == []
