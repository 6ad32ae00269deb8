"""Composition follows sbx's merge rules (reference §1.4)."""

from __future__ import annotations

import pytest

from sandkit.kits import KitError, compose, load_kit
from sandkit.kits.model import Kit
from sandkit.kits.resolution import resolve
from tests.conftest import WriteKit

AGENT = """
schemaVersion: "2"
kind: sandbox
name: base
sandbox:
  image: docker/sandbox-templates:shell
  entrypoint: [bash]
permissions:
  network:
    allow: [a.com]
    deny: [bad.com]
credentials:
  - service: one
    apiKey:
      name: ONE
      inject: [{domain: a.com, header: X-One}]
environment:
  variables: {SHARED: base, ONLY_BASE: "1"}
setup:
  install: [{command: echo base-install}]
  startup: [{command: [echo, base-start]}]
  files: [{path: /etc/base, content: b}]
volumes: [{path: /data, size: 1g}]
ports: [{container: 8080}]
"""


def mixin(name: str, extra: str = "") -> str:
    return f"""
schemaVersion: "2"
kind: mixin
name: {name}
permissions:
  network:
    allow: [{name}.com]
environment:
  variables: {{SHARED: {name}}}
setup:
  install: [{{command: echo {name}-install}}]
  startup: [{{command: [echo, {name}-start]}}]
volumes: [{{path: /data, size: 2g}}]
ports: [{{container: 8080}}]
{extra}"""


def load(write_kit: WriteKit, text: str, name: str) -> Kit:
    return load_kit(write_kit(text, name)).kit


def test_merge_rules(write_kit: WriteKit) -> None:
    base = load(write_kit, AGENT, "base")
    m1 = load(write_kit, mixin("m1"), "m1")
    m2 = load(write_kit, mixin("m2", "security: {privileged: true}"), "m2")
    out = compose(base, [m1, m2])
    assert [r.pattern for r in out.network.allow] == ["a.com", "m1.com", "m2.com"]
    assert [r.pattern for r in out.network.deny] == ["bad.com"]
    assert [r.origin.kit for r in out.network.allow] == ["base", "m1", "m2"]
    assert out.environment == {"SHARED": "m2", "ONLY_BASE": "1"}
    assert [c.argv[-1] for c in out.install] == [
        "echo base-install",
        "echo m1-install",
        "echo m2-install",
    ]
    assert [c.argv[-1] for c in out.startup] == ["base-start", "m1-start", "m2-start"]
    assert [v.size_bytes for v in out.volumes] == [2 << 30]
    assert len(out.ports) == 3
    assert out.privileged
    assert [k.name for k in out.kits] == ["base", "m1", "m2"]
    assert out.agent.entrypoint == ("bash",)


def test_duplicate_credential_service(write_kit: WriteKit) -> None:
    base = load(write_kit, AGENT, "base")
    dup = load(
        write_kit, mixin("m1", "credentials:\n  - service: one\n    apiKey: {name: ONE}\n"), "m1"
    )
    with pytest.raises(KitError) as caught:
        compose(base, [dup])
    (issue,) = caught.value.issues
    assert issue.file.endswith("m1/spec.yaml")
    assert issue.span.line + 1 == 15
    assert "credential service 'one' is already declared by base (" in issue.message


def test_duplicate_kit_name(write_kit: WriteKit) -> None:
    base = load(write_kit, AGENT, "base")
    a = load(write_kit, mixin("m1"), "a")
    b = load(write_kit, mixin("m1"), "b")
    with pytest.raises(KitError, match='compose: duplicate kit name "m1"') as caught:
        compose(base, [a, b])
    assert caught.value.issues[0].file.endswith("b/spec.yaml")


def test_requires_agent(write_kit: WriteKit) -> None:
    base = load(write_kit, AGENT, "base")
    picky = load(write_kit, mixin("m1", "requires: {agent: claude}"), "m1")
    with pytest.raises(
        KitError, match="mixin 'm1' requires agent 'claude', but this sandbox runs 'base'"
    ):
        compose(base, [picky])
    fine = load(write_kit, mixin("m2", "requires: {agent: base}"), "m2")
    assert compose(base, [fine]).kits[1].name == "m2"


def test_two_agents_and_mixin_as_base(write_kit: WriteKit) -> None:
    base = load(write_kit, AGENT, "base")
    other = load(write_kit, AGENT.replace("name: base", "name: other"), "other")
    with pytest.raises(KitError, match="'other' is an agent kit, and the sandbox already has one"):
        compose(base, [other])
    with pytest.raises(KitError, match="'m1' is a mixin; a sandbox starts from an agent kit"):
        compose(load(write_kit, mixin("m1"), "m1"), [])


def test_extends_builtin(write_kit: WriteKit) -> None:
    child = write_kit(
        """
        schemaVersion: "2"
        kind: sandbox
        name: my-shell
        extends: shell
        sandbox:
          entrypoint: [zsh]
        permissions:
          network:
            allow: [extra.com]
        environment:
          variables: {EDITOR: vim}
        """,
        "child",
    )
    out = resolve(str(child)).sandbox
    assert out.agent.entrypoint == ("zsh",)
    assert out.agent.image == "docker/sandbox-templates:shell"  # inherited
    assert out.agent.context_filename == "AGENTS.md"
    assert [c.kit for c in out.agent_context] == ["shell"]
    assert [r.pattern for r in out.network.allow] == ["extra.com"]
    assert out.environment == {"EDITOR": "vim"}


def test_extends_unknown_and_cycle(write_kit: WriteKit) -> None:
    child = write_kit('schemaVersion: "2"\nkind: sandbox\nname: c\nextends: nope\n', "c")
    with pytest.raises(KitError, match="no built-in kit named 'nope'"):
        resolve(str(child))
    selfish = write_kit('schemaVersion: "2"\nkind: sandbox\nname: shell2\nextends: shell2\n', "s")
    with pytest.raises(KitError, match="names each kit once"):
        resolve(str(selfish))


def test_unreachable_inject_is_a_composed_warning(write_kit: WriteKit) -> None:
    base = write_kit(AGENT, "base")
    needy = write_kit(
        mixin(
            "m1",
            "credentials:\n  - service: two\n    apiKey:\n      inject: [{domain: b.com, header: X}]\n",
        ),
        "m1",
    )
    resolution = resolve(str(base), [str(needy)])
    codes = [w.code for w in resolution.warnings]
    assert codes == ["unreachable-inject"]
    assert "injects into 'b.com', which no kit allows" in resolution.warnings[0].message
    ok = write_kit(
        mixin("m2", "permissions:\n  network:\n    allow: [b.com]\n").replace(
            "permissions:\n  network:\n    allow: [m2.com]\n", ""
        ),
        "m2",
    )
    assert not resolve(str(base), [str(needy), str(ok)]).warnings


def test_unknown_kit_arg_is_refused(write_kit: WriteKit) -> None:
    base = write_kit(AGENT, "base")
    with pytest.raises(KitError, match="no kit declares arg"):
        resolve(str(base), [], {"nope": "1"})
