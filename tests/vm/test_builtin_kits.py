"""Every built-in kit and the corpus kits that need no image of their own, applied in real
guests: their env, placeholders, installs (through the proxy, from the host's registries),
startup commands, agent context and network rules take effect inside the VM."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sandkit.hostconfig import registry_args
from tests.vm.conftest import Env, wait_for_member

pytestmark = pytest.mark.vm

CORPUS = Path(__file__).parent.parent / "data" / "kit-corpus"
HTTP = "%{http_code}:%{http_connect}"


def decisions(env: Env, name: str, *hosts: str, times: int = 1) -> list[dict[str, Any]]:
    """The sandbox's decision log once each of ``hosts`` is in it ``times`` times."""
    return env.decisions(
        name, lambda rs: all(sum(r["host"] == h for r in rs) >= times for h in hosts)
    )


def test_claude_installs_through_the_proxy_and_prints_its_version(env: Env, tmp_path: Path) -> None:
    """`sandkit run claude -- --version`: npm installs Claude Code inside the VM from the
    host's npm registry, through the proxy; a leading flag is appended to `claude`. The
    install runs once, in a pool member prepared for the claude kit, so the run itself
    adopts a VM that has Claude Code already (and the next members are clones of it)."""
    pooled = Env({**env.vars, "SANDKIT_POOL_SIZE": "1"}, env.state)
    pooled.sk("pool", "fill", "--agent", "claude", "--memory", "2g", timeout=900, check=True)
    # The kit requires 'anthropic': without a value, run stops before booting. This test
    # never calls the API, so any value will do.
    env.sk("secret", "set", "anthropic", input="not-a-real-key", check=True)
    done = pooled.sk(
        "run", "claude", str(tmp_path), "--name", "claude-box", "--memory", "2g", "--",
        "--version", timeout=900,
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(r"\d+\.\d+\.\d+ \(Claude Code\)\n", done.stdout), done.stdout
        state = json.loads((env.state / "claude-box" / "state.json").read_text())
        assert state["adopted_prepared"] is True
        registry = registry_args()["npmRegistryHost"]
        hosts = {
            (r["host"], r["action"], r["rule"]) for r in decisions(env, "claude-box", registry)
        }
        assert (registry, "allowed", registry) in hosts  # the kit's arg-filled rule let it in
        inside = env.sk(
            "exec", "claude-box", "--", "sh", "-c",
            "echo $ANTHROPIC_API_KEY; echo $NPM_CONFIG_REGISTRY; command -v claude",
            check=True,
        ).stdout.split()  # fmt: skip
        assert inside[0].startswith("sandkit-placeholder-anthropic-")
        assert inside[1:] == [registry_args()["npmRegistry"], "/usr/local/bin/claude"]
    finally:
        env.sk("rm", "-f", "claude-box")
        wait_for_member(pooled, "restored from golden snapshot ", "-kits-")  # the refill
        pooled.sk("pool", "drain", timeout=300)


def test_builtin_mixins_and_a_v1_corpus_kit_in_one_guest(env: Env, tmp_path: Path) -> None:
    ws = tmp_path / "proj"
    ws.mkdir()
    name = "allkits"
    kits = ["python-dev", "node", "github", str(CORPUS / "v1-mixin-deepseek-creds")]
    env.sk(
        "create", "shell", str(ws), "--name", name, "--memory", "1g",
        *[f"--kit={k}" for k in kits], timeout=1200, check=True,
    )  # fmt: skip
    try:
        values = registry_args()
        got = env.sk(
            "exec", name, "--", "sh", "-c",
            'echo "$PIP_INDEX_URL|$PIP_DISABLE_PIP_VERSION_CHECK|$NPM_CONFIG_REGISTRY|'
            '$NPM_CONFIG_FUND|$GH_TOKEN|$DEEPSEEK_API_KEY"',
            check=True,
        ).stdout.strip().split("|")  # fmt: skip
        assert got[:4] == [values["pypiIndex"], "1", values["npmRegistry"], "false"]
        assert got[4].startswith("sandkit-placeholder-github-")
        assert got[5].startswith("sandkit-placeholder-deepseek-")

        # python-dev's install ran (apt through the proxy); pip reaches the index
        tools = env.sk(
            "exec", name, "--", "sh", "-c",
            "python3 -m venv /tmp/v && /tmp/v/bin/pip download -q --no-deps -d /tmp/dl six "
            "&& ls /tmp/dl && dpkg -s build-essential | grep -c '^Status: install ok'",
            timeout=600,
        )  # fmt: skip
        assert tools.returncode == 0, tools.stderr
        wheel, installed = tools.stdout.split()
        assert wheel.startswith("six-") and wheel.endswith(".whl") and installed == "1"

        # node: npm asks the host's registry, through the proxy
        npm = env.sk("exec", name, "--", "npm", "view", "left-pad", "version", timeout=300)
        assert re.fullmatch(r"\d+\.\d+\.\d+\n", npm.stdout), npm.stderr

        # github's startup command configured git for the agent user
        helper = env.sk(
            "exec", name, "--", "git", "config", "--global", "--get",
            "credential.https://github.com.helper", check=True,
        )  # fmt: skip
        assert "x-access-token" in helper.stdout

        # agent context: the base kit's file in the workspace's parent, one entry per mixin
        context = env.sk("exec", name, "--", "cat", f"{tmp_path}/AGENTS.md", check=True).stdout
        for kit in ("python-dev", "node", "github", "deepseek-creds"):
            assert f"- {kit}: kits-agent-context/{kit}.md" in context
        deepseek = env.sk(
            "exec", name, "--", "cat", f"{tmp_path}/kits-agent-context/deepseek-creds.md",
            check=True,
        ).stdout  # fmt: skip
        assert deepseek.startswith("## DeepSeek (proxy-managed)")

        # network: the kits' hosts are allowed (by their own rules), others are not
        blocked = env.sk(
            "exec", name, "--", "curl", "-s", "-o", "/dev/null", "-w", HTTP,
            "https://not-in-any-kit.example/",
        )  # fmt: skip
        assert blocked.stdout == "000:403"
        logged = decisions(env, name, values["pypiIndexHost"], values["npmRegistryHost"])
        rules = {(r["host"], r["rule"]) for r in logged if r["rule"]}
        assert (values["pypiIndexHost"], values["pypiIndexHost"]) in rules
        assert (values["npmRegistryHost"], values["npmRegistryHost"]) in rules
    finally:
        env.sk("rm", "-f", name)


INSTALL_ONLY = """\
# syntax=docker/sandbox-kit:3
schemaVersion: "3"
kind: mixin
capabilities:
  - type: com.docker.sandbox/network-policy@1
    config:
      install:
        allow: [other.test]
      runtime:
        allow: [api.test]
  - type: com.docker.sandbox/lifecycle@1
    config:
      install:
        - command: curl -sS -o /dev/null -w "%{http_code}" https://other.test:PORT/ > /var/tmp/reach
          description: reach an install-only host
      files:
        - path: /etc/v3-demo.conf
          content: from a v3 kit
"""


def test_v3_workload_and_install_phase_network(
    env: Env, tmp_path: Path, upstream: tuple[int, Path]
) -> None:
    """The v3 corpus workload as the agent; a v3 mixin whose install-phase host is open
    while its install command runs and closed afterwards."""
    port, ca = upstream
    kit = tmp_path / "install-only"
    kit.mkdir()
    (kit / "spec.yaml").write_text(INSTALL_ONLY.replace("PORT", str(port)))
    ws = tmp_path / "proj"
    ws.mkdir()
    name = "v3box"
    env.sk(
        "create", str(CORPUS / "v3-workload-shell"), str(ws), "--name", name,
        "--kit", str(kit), "--default", "deny-all", "--memory", "512m",
        "--upstream-ca", str(ca), "--resolve", "other.test=127.0.0.1",
        "--resolve", "api.test=127.0.0.1", check=True,
    )  # fmt: skip
    try:
        script = textwrap.dedent(f"""\
            cat /var/tmp/reach; echo
            cat /etc/v3-demo.conf; echo
            curl -s -o /dev/null -w "{HTTP}" https://other.test:{port}/; echo
            curl -s -o /dev/null -w "{HTTP}" https://api.test:{port}/; echo
            """)
        out = env.sk("exec", name, "--", "sh", "-c", script, check=True).stdout.splitlines()
        assert out == ["200", "from a v3 kit", "000:403", "200:200"]
        context = env.sk("exec", name, "--", "cat", f"{tmp_path}/AGENTS.md", check=True).stdout
        assert context.startswith("This is a plain shell sandbox on the shell-docker template")
        assert "- install-only: kits-agent-context/install-only.md" not in context  # no body
        records = decisions(env, name, "other.test", times=2)
        other = [r for r in records if r["host"] == "other.test"]
        assert [r["action"] for r in other] == ["allowed", "blocked"]  # install, then runtime
    finally:
        env.sk("rm", "-f", name)


def test_corpus_glab_install_runs_through_the_proxy(env: Env, tmp_path: Path) -> None:
    """glab's install downloads from gitlab.com, which the kit allows. The test pins
    gitlab.com to this machine's loopback, where no server can prove to be gitlab.com, so
    the download fails on every machine: the failure names the kit and the step, and the
    proxy's log shows the kit's own rule let the request out."""
    # The kit requires 'gitlab' (run stops before booting without it); never sent here.
    env.sk("secret", "set", "gitlab", input="not-a-real-token", check=True)
    done = env.sk(
        "run", "shell", "--name", "glab-box", "--memory", "512m",
        "--resolve", "gitlab.com=127.0.0.1",
        "--kit", str(CORPUS / "v2-mixin-glab"), "--", "glab", "--version", timeout=600,
    )  # fmt: skip
    try:
        assert done.returncode != 0
        assert "kit glab: install command 1 (Install glab v1.114.0, version+digest pinned)" in (
            done.stderr
        )
        assert "Traceback" not in done.stderr
        gitlab = [r for r in decisions(env, "glab-box", "gitlab.com") if r["host"] == "gitlab.com"]
        assert gitlab and gitlab[0]["rule"] == "gitlab.com:443"
        assert "v2-mixin-glab/spec.yaml" in str(gitlab[0]["origin"])
    finally:
        env.sk("rm", "-f", "glab-box")


# The other agents sbx ships built in: (kit, the service its run requires a value for, a
# pattern of what `--version` prints). Node 22 comes from the npm registry for the first
# three; aider's venv from the host's PyPI index.
AGENTS = [
    ("gemini", "google", r"\d+\.\d+\.\d+\n"),
    ("qwen", "dashscope", r"\d+\.\d+\.\d+\n"),
    ("copilot", "copilot", r"(?s).*\d+\.\d+\.\d+.*"),
    ("aider", "anthropic", r"aider \d+\.\d+\.\d+\n"),
]


@pytest.mark.timeout(1200)  # an agent and its runtime installed under TCG: minutes
@pytest.mark.parametrize(("kit", "service", "version"), AGENTS, ids=[a[0] for a in AGENTS])
def test_agent_installs_through_the_proxy_and_prints_its_version(
    env: Env, tmp_path: Path, kit: str, service: str, version: str
) -> None:
    """`sandkit run KIT -- --version`: the agent is installed inside the VM from the
    host's registries through the proxy (the registry's host logged as allowed), and the
    flag reaches the agent's own command. The key is never sent: `--version` calls no API."""
    env.sk("secret", "set", service, input="not-a-real-key", check=True)
    name = f"{kit}-box"
    done = env.sk(
        "run", kit, str(tmp_path), "--name", name, "--memory", "2g", "--", "--version",
        timeout=1200,
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(version, done.stdout), done.stdout
        values = registry_args()
        registry = values["pypiIndexHost" if kit == "aider" else "npmRegistryHost"]
        hosts = {(r["host"], r["action"]) for r in decisions(env, name, registry)}
        assert (registry, "allowed") in hosts
    finally:
        env.sk("rm", "-f", name)


def test_opencode_installs_through_the_proxy_and_prints_its_version(
    env: Env, tmp_path: Path
) -> None:
    """The cheapest of the agents sbx ships built in: `sandkit run opencode -- --version`
    installs opencode-ai (and the platform binary it picks) from the host's npm registry
    through the proxy; neither of its keys is required."""
    done = env.sk(
        "run", "opencode", str(tmp_path), "--name", "opencode-box", "--memory", "2g", "--",
        "--version", timeout=900,
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(r"\d+\.\d+\.\d+\n", done.stdout), done.stdout
        registry = registry_args()["npmRegistryHost"]
        hosts = {(r["host"], r["action"]) for r in decisions(env, "opencode-box", registry)}
        assert (registry, "allowed") in hosts
    finally:
        env.sk("rm", "-f", "opencode-box")
