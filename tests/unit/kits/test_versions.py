"""Each schema version folds into the same canonical model."""

from __future__ import annotations

import io
import re

import pytest
from ruamel.yaml import YAML

from sandkit.kits import KitError, load_kit, load_text
from sandkit.kits.migrate import migrate
from sandkit.kits.model import KitKind, Phase
from tests.conftest import CORPUS, WriteKit

V1_FULL = """
schemaVersion: "1"
kind: agent
name: legacy
agent:
  image: img
  aiFilename: CLAUDE.md
  entrypoint: {run: [claude], args: [--print], ttyArgs: [--tty]}
  resources: {cpu: 2, memoryMB: 4096}
network:
  allowedDomains: [api.anthropic.com, api.github.com]
  deniedDomains: [evil.com]
  serviceDomains:
    api.github.com: github
    api.anthropic.com: anthropic
  serviceAuth:
    anthropic: {headerName: x-api-key}
credentials:
  sources:
    anthropic: {env: [ANTHROPIC_API_KEY, CLAUDE_KEY], required: true}
    github:
      env: [GH_TOKEN]
      file: {path: ~/.config/gh/hosts.yml, parser: "json:github.com.oauth_token"}
environment:
  variables: {A: "1"}
  proxyManaged: [ANTHROPIC_API_KEY, GH_TOKEN]
commands:
  install: [{command: apt-get install -y jq}]
  startup: [{command: [sleep, "1"], background: true}]
  initFiles: [{path: /etc/x, content: "w=${WORKDIR}", onlyIfMissing: true}]
memory: "remember"
"""


def test_v1_folds_credentials(write_kit: WriteKit) -> None:
    loaded = load_kit(write_kit(V1_FULL))
    kit = loaded.kit
    assert kit.kind is KitKind.AGENT and kit.schema_version == "1"
    assert kit.agent is not None
    assert kit.agent.entrypoint == ("claude",) and kit.agent.args == ("--print",)
    assert kit.agent.interactive_args == ("--tty",)
    assert kit.agent.resources.memory_bytes == 4096 << 20
    creds = {c.service: c for c in kit.credentials}
    assert list(creds) == ["anthropic", "github"]  # serviceDomains sorted by domain
    anthropic = creds["anthropic"]
    assert (anthropic.env, anthropic.proxy_managed, anthropic.required) == (
        "ANTHROPIC_API_KEY",
        True,
        True,
    )
    assert [(i.domain, i.header, i.format) for i in anthropic.inject] == [
        ("api.anthropic.com", "x-api-key", "%s")
    ]
    github = creds["github"]  # no serviceAuth: sbx's default header for github
    assert [(i.header, i.format) for i in github.inject] == [("Authorization", "token %s")]
    assert github.sources is not None and github.sources.parser == "json:github.com.oauth_token"
    assert kit.files[0].overwrite is False and kit.files[0].content == "w=${WORKDIR}"
    assert kit.startup[0].background and kit.install[0].argv[:2] == ("sh", "-c")
    assert kit.agent_context[0].content == "remember"
    legacy = [w for w in loaded.warnings if w.code == "legacy"]
    assert [w.span.line + 1 for w in legacy] == [
        4,
        9,
        17,
        26,
        30,
    ]  # agent, network, credentials, commands, memory


def test_migrate_v1_to_v2_is_equivalent(write_kit: WriteKit) -> None:
    loaded = load_kit(write_kit(V1_FULL))
    doc, notes = migrate(loaded)
    assert doc["schemaVersion"] == "2" and doc["kind"] == "sandbox"
    assert any("credentials.sources.github" in n for n in notes)
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    again = load_text(out.getvalue(), "/m/spec.yaml").kit
    strip = {"origin", "sources"}
    assert [c.model_dump(exclude=strip) for c in again.credentials] == [
        c.model_dump(exclude=strip) for c in loaded.kit.credentials
    ]
    for field in ("agent", "environment"):
        assert getattr(again, field) == getattr(loaded.kit, field)
    assert [r.pattern for r in again.network.deny] == ["evil.com"]
    assert [(c.argv, c.user, c.background) for c in again.startup] == [
        (c.argv, c.user, c.background) for c in loaded.kit.startup
    ]


def test_migrate_corpus_v1_kit() -> None:
    loaded = load_kit(CORPUS / "v1-mixin-deepseek-creds")
    doc, _ = migrate(loaded)
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    again = load_text(out.getvalue(), "/m/spec.yaml")
    assert not again.warnings
    (cred,) = again.kit.credentials
    assert (cred.service, cred.env, cred.proxy_managed) == ("deepseek", "DEEPSEEK_API_KEY", True)
    assert cred.inject[0].format == "Bearer %s"


V3 = """
# syntax=docker/sandbox-kit:3
schemaVersion: "3"
kind: workload
args:
  region: {default: eu, enum: [eu, us], env: REGION}
capabilities:
  - type: com.docker.sandbox/sbx@1
  - type: com.docker.sandbox/network-policy@2
    config:
      install:
        allow: [deb.example.net]
      runtime:
        allow:
          - api.example.com
          - hosts: ["**.${{ kit.args.region }}.example.com"]
            methods: [GET]
            paths: ["/v1/*"]
        deny: [bad.example.com]
  - type: com.docker.sandbox/credential@1
    optional: true
    config:
      service: example
      phase: [install, runtime]
      apiKey:
        name: EXAMPLE_KEY
        proxyManaged: true
        inject: [{domain: api.example.com, scheme: bearer}]
  - type: com.docker.sandbox/lifecycle@1
    config:
      install: [{command: make install}]
      startup: [{command: [serve], background: true, env: [REGION]}]
      files: [{path: /etc/a, content: x, overwrite: false}]
      interactive: [--tty]
  - type: com.docker.sandbox/agent-context@1
    config: {filename: AGENTS.md, contentFile: docs/context.md}
  - type: com.docker.sandbox/port@1
    config: {container: 3000}
  - type: com.docker.sandbox/volume@1
    config: {path: /cache, tmpfs: true}
  - type: com.docker.sandbox/resources@1
    config: {cpu: 2, memory: 4g}
  - type: com.docker.sandbox/git-identity@1
    optional: true
  - group:
      name: extras
      optional: true
      capabilities:
        - type: com.docker.sandbox/port@1
          config: {container: 9000}
        - type: com.docker.sandbox/ssh-agent@1
"""


def test_v3_capabilities_map_onto_the_model(write_kit: WriteKit) -> None:
    root = write_kit(V3, "my-workload", files={"docs/context.md": "read me"})
    loaded = load_kit(root, {"region": "us"})
    kit = loaded.kit
    assert (kit.name, kit.kind, kit.schema_version) == ("my-workload", KitKind.AGENT, "3")
    allow = [(r.pattern, r.phase, r.methods, r.paths) for r in kit.network.allow]
    assert allow == [
        ("deb.example.net", Phase.INSTALL, (), ()),
        ("api.example.com", Phase.RUNTIME, (), ()),
        ("**.us.example.com", Phase.RUNTIME, ("GET",), ("/v1/*",)),
    ]
    (cred,) = kit.credentials
    assert not cred.required  # optional capability
    assert cred.phases == (Phase.INSTALL, Phase.RUNTIME)
    assert (cred.inject[0].header, cred.inject[0].format) == ("Authorization", "Bearer %s")
    assert kit.environment == {"REGION": "us"}
    assert kit.install[0].user == "0" and kit.startup[0].user == "1000"
    assert kit.startup[0].env == ("REGION",)
    assert kit.files[0].overwrite is False
    assert kit.agent is not None and kit.agent.interactive_args == ("--tty",)
    assert kit.agent.context_filename == "AGENTS.md" and kit.agent_context[0].content == "read me"
    assert [p.container for p in kit.ports] == [3000]  # the optional group was dropped whole
    assert kit.volumes[0].tmpfs and kit.volumes[0].size_bytes is None  # unspecified
    assert kit.agent.resources.memory_bytes == 4 << 30
    skipped = sorted(w.message for w in loaded.warnings if w.code == "unsupported-capability")
    assert skipped == [
        "skipped optional capability 'com.docker.sandbox/git-identity@1': not supported by sandkit",
        "skipped optional capability 'com.docker.sandbox/ssh-agent@1': not supported by sandkit"
        " (so group 'extras' is skipped whole)",
    ]


def test_v3_arg_enum_is_enforced(write_kit: WriteKit) -> None:
    with pytest.raises(KitError, match="arg 'region' is 'mars', which is not one of: eu, us"):
        load_kit(write_kit(V3, "w", files={"docs/context.md": "x"}), {"region": "mars"})


def test_v3_content_file_must_be_inside_the_kit(write_kit: WriteKit) -> None:
    text = V3.replace("contentFile: docs/context.md", "contentFile: ../../etc/passwd")
    with pytest.raises(
        KitError, match=re.escape("'../../etc/passwd' is not a file inside the kit")
    ):
        load_kit(write_kit(text, "w"))


def test_v3_corpus_shell() -> None:
    kit = load_kit(CORPUS / "v3-workload-shell").kit
    assert kit.kind is KitKind.AGENT
    assert [(r.pattern, r.phase) for r in kit.network.allow] == [
        ("deb.example.net", Phase.RUNTIME),
        ("dhi.io", Phase.RUNTIME),
    ]
    assert kit.agent is not None and kit.agent.context_filename == "AGENTS.md"


def test_args_required_and_substituted(write_kit: WriteKit) -> None:
    root = write_kit(
        """
        schemaVersion: "2"
        kind: mixin
        name: reg
        args:
          host: {required: true, pattern: "[a-z.]+"}
          port: {default: "8443"}
        permissions:
          network:
            allow: ["${{ kit.args.host }}:${{kit.args.port}}"]
        environment:
          variables: {REGISTRY: "https://${{ kit.args.host }}/"}
        """
    )
    assert load_kit(root).kit.network.allow[0].pattern == "arg-host:8443"  # validation stand-in
    with pytest.raises(KitError, match="arg 'host' is required: pass --kit-arg host=VALUE"):
        load_kit(root, require_args=True)
    kit = load_kit(root, {"host": "reg.example.com"}, require_args=True).kit
    assert kit.network.allow[0].pattern == "reg.example.com:8443"
    assert kit.environment["REGISTRY"] == "https://reg.example.com/"
    with pytest.raises(KitError, match="which does not match"):
        load_kit(root, {"host": "BAD HOST"})


def test_unknown_expression(write_kit: WriteKit) -> None:
    root = write_kit('schemaVersion: "2"\nkind: mixin\nname: x\ndescription: "${{ secrets.X }}"\n')
    with pytest.raises(KitError, match=r"unknown expression '\$\{\{ secrets.X \}\}'"):
        load_kit(root)
