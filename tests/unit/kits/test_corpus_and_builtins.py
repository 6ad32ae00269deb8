"""The real published kits and sandkit's built-in kits."""

from __future__ import annotations

import pytest

from sandkit.hostconfig import registry_args, registry_hosts
from sandkit.kits import load_kit, resolve
from sandkit.kits.builtin import builtin_names
from sandkit.kits.issues import Severity
from tests.conftest import BUILTIN, CORPUS

CORPUS_KITS = sorted(p.name for p in CORPUS.iterdir() if (p / "spec.yaml").is_file())


def test_corpus_is_complete() -> None:
    assert CORPUS_KITS == [
        "v1-mixin-deepseek-creds",
        "v2-mixin-glab",
        "v2-sandbox-aider",
        "v3-workload-shell",
    ]


# What each published kit is, and the advice sandkit gives about it (never an error:
# published kits load as they are).
CORPUS_EXPECTED = {
    "v1-mixin-deepseek-creds": (
        ("deepseek-creds", "mixin", "1"),
        ["api.deepseek.com"],
        ["deepseek"],
        ["legacy", "legacy", "legacy"],
    ),
    "v2-mixin-glab": (("glab", "mixin", "2"), ["gitlab.com:443"], ["gitlab"], []),
    "v2-sandbox-aider": (
        ("aider", "agent", "2"),
        [
            "github.com",
            "api.github.com",
            "raw.githubusercontent.com",
            "objects.githubusercontent.com",
            "release-assets.githubusercontent.com",
            "index.py.example",
            "files.py.example",
            "astral.sh",
            "*.astral.sh",
            "aider.chat",
        ],
        ["anthropic", "gemini", "openai"],
        # Its image is shell-docker (sandkit lacks the Docker base: it loads, cannot start);
        # its keys go to hosts only a mixin or approval allows.
        ["needs-image", *["inject-not-allowed"] * 3],
    ),
    "v3-workload-shell": (
        ("v3-workload-shell", "agent", "3"),
        ["deb.example.net", "dhi.io"],
        [],
        [],
    ),
}


@pytest.mark.parametrize("name", CORPUS_KITS)
def test_corpus_kit_loads_as_published(name: str) -> None:
    identity, allow, services, codes = CORPUS_EXPECTED[name]
    loaded = load_kit(CORPUS / name)
    kit = loaded.kit
    assert (kit.name, kit.kind, kit.schema_version) == identity
    assert [r.pattern for r in kit.network.allow] == allow
    assert kit.network.deny == ()
    assert [c.service for c in kit.credentials] == services
    assert [w.code for w in loaded.warnings] == codes
    assert {w.severity for w in loaded.warnings} <= {Severity.WARNING}
    assert all(w.file.endswith(f"{name}/spec.yaml") and w.span.line > 0 for w in loaded.warnings)


def test_aider_with_deepseek_resolves() -> None:
    resolution = resolve(
        str(CORPUS / "v2-sandbox-aider"), [str(CORPUS / "v1-mixin-deepseek-creds")]
    )
    sandbox = resolution.sandbox
    hosts = {(r.pattern, r.origin.kit) for r in sandbox.network.allow}
    assert ("aider.chat", "aider") in hosts and ("api.deepseek.com", "deepseek-creds") in hosts
    assert [c.service for c in sandbox.credentials] == ["anthropic", "gemini", "openai", "deepseek"]
    assert sandbox.agent.entrypoint == ("/home/agent/.local/bin/aider",)
    assert [c.kit for c in sandbox.agent_context] == ["deepseek-creds"]


def test_builtin_kits_are_the_expected_set() -> None:
    assert builtin_names() == ["claude", "codex", "github", "node", "python-dev", "shell"]


@pytest.mark.parametrize("name", ["claude", "codex", "github", "node", "python-dev", "shell"])
def test_builtin_kit_is_valid_without_warnings(name: str) -> None:
    loaded = load_kit(BUILTIN / name)
    assert loaded.warnings == ()


@pytest.mark.parametrize(
    ("name", "service", "header", "format"),
    [
        ("claude", "anthropic", "x-api-key", "%s"),
        ("codex", "openai", "Authorization", "Bearer %s"),
        ("github", "github", "Authorization", "token %s"),
    ],
)
def test_builtin_credentials_use_real_header_conventions(
    name: str, service: str, header: str, format: str
) -> None:
    (cred,) = load_kit(BUILTIN / name).kit.credentials
    assert cred.service == service and cred.proxy_managed
    assert {(i.header, i.format) for i in cred.inject} == {(header, format)}


def test_builtin_agent_with_all_mixins_composes() -> None:
    args = {
        "npmRegistryHost": "registry.npm.test",
        "npmRegistry": "https://registry.npm.test/",
        "pypiIndexHost": "index.py.test",
        "pypiIndex": "https://index.py.test/simple/",
        "pypiFilesHost": "files.py.test",
        "debianMirrorHost": "deb.test",
    }
    sandbox = resolve("claude", ["python-dev", "node", "github"], args).sandbox
    assert [k.name for k in sandbox.kits] == ["claude", "python-dev", "node", "github"]
    hosts = [r.pattern for r in sandbox.network.allow]
    assert "registry.npm.test" in hosts and "index.py.test" in hosts
    assert not resolve("claude", ["python-dev", "node", "github"], args).warnings


def test_no_package_registry_host_is_written_in_builtin_kits() -> None:
    hosts = set(registry_args().values())
    assert hosts, "the host's package registries could not be read"
    for spec in BUILTIN.glob("*/spec.yaml"):
        text = spec.read_text()
        for host in hosts:
            assert host not in text, f"{spec} names {host}: take it as a kit arg"


def test_registry_args_fill_builtin_kits() -> None:
    sandbox = resolve("claude", ["python-dev"], defaults=registry_args()).sandbox
    allowed = {r.pattern for r in sandbox.network.allow}
    assert set(registry_hosts(registry_args())) <= allowed
    assert sandbox.environment["NPM_CONFIG_REGISTRY"] == registry_args()["npmRegistry"]
