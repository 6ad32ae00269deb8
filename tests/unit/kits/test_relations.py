"""SPEC-v3 §5: provides/requires/integrates/conflicts, parsed under the §5 grammar and
judged as a closed set (§5.3) when kits compose; kits then merge in dependency order.
The kits are written for these tests from the spec's rules."""

from __future__ import annotations

import json

import pytest

from sandkit.kits import KitError, compose, load_kit
from sandkit.kits.issues import Severity
from sandkit.kits.model import Kit
from sandkit.kits.relations import compare, parse_requirement
from tests.conftest import WriteKit


def kit(
    write_kit: WriteKit,
    name: str,
    kind: str = "mixin",
    *,
    version: str | None = None,
    **relations: list[str],
) -> Kit:
    lines = ['schemaVersion: "3"', f"kind: {kind}"]
    if version is not None:
        lines.append(f'version: "{version}"')
    lines += [f"{key}: {json.dumps(value)}" for key, value in relations.items()]
    lines += [
        "capabilities:",
        "  - type: com.docker.sandbox/lifecycle@1",
        f"    config: {{install: [{{command: {name}}}]}}",
    ]
    return load_kit(write_kit("\n".join(lines) + "\n", name)).kit


def compose_errors(agent: Kit, mixins: list[Kit]) -> list[str]:
    with pytest.raises(KitError) as caught:
        compose(agent, mixins)
    return [i.message for i in caught.value.issues if i.severity is Severity.ERROR]


def installs(agent: Kit, mixins: list[Kit]) -> list[str]:
    return [c.argv[2] for c in compose(agent, mixins).install]


# ---- order ------------------------------------------------------------------------------


def test_order_comes_from_the_dependency_graph_not_the_flags(write_kit: WriteKit) -> None:
    workload = kit(write_kit, "workload", "workload", provides=["agent"], requires=["tool"])
    tool = kit(write_kit, "tool", provides=["tool"], requires=["base"])
    base = kit(write_kit, "base", provides=["base"])
    assert installs(workload, [tool, base]) == ["base", "tool", "workload"]
    assert installs(workload, [base, tool]) == ["base", "tool", "workload"]
    names = [k.name for k in compose(workload, [tool, base]).kits]
    assert names == ["base", "tool", "workload"]


def test_without_relations_the_order_is_the_named_one(write_kit: WriteKit) -> None:
    workload = kit(write_kit, "workload", "workload")
    a, b, c = (kit(write_kit, n) for n in "abc")
    assert installs(workload, [c, a, b]) == ["workload", "c", "a", "b"]


def test_a_met_integration_orders_like_a_requirement(write_kit: WriteKit) -> None:
    workload = kit(write_kit, "workload", "workload")
    user = kit(write_kit, "user", integrates=["docker-engine >= 25.0.0"])
    engine = kit(write_kit, "engine", provides=["docker-engine@27.1.0"])
    other = kit(write_kit, "other")
    assert installs(workload, [user, other, engine]) == [
        "workload",
        "other",
        "engine",
        "user",
    ]
    # An absent provider is fine.
    assert installs(workload, [user]) == ["workload", "user"]


@pytest.mark.parametrize(
    ("provides", "version", "requires"),
    [
        ("gh@2.98.0", None, "gh >= 2.0.0, < 3.0.0"),
        ("gh", "2.1.0", "gh >= 2"),  # the descriptor's version is the fallback
        ("gh@1.10.0", None, "gh > 1.9.0"),  # numeric segments compare as numbers
        ("gh@2.0.0", None, "gh = 2.0.0"),
        ("gh@2.0.0", None, "gh >= 2.0.0, <= 2.0.0"),
        ("gh", None, "gh"),  # an unconstrained requirement takes any provider
        ("com.docker.kit/gh@1", None, "gh >= 1"),  # bare names live in com.docker.kit/
        ("com.example/gh@1", None, "com.example/gh"),
    ],
)
def test_met_requirements(
    write_kit: WriteKit, provides: str, version: str | None, requires: str
) -> None:
    workload = kit(write_kit, "workload", "workload", requires=[requires])
    provider = kit(write_kit, "provider", version=version, provides=[provides])
    assert installs(workload, [provider]) == ["provider", "workload"]


# ---- every invalid composition of §5.3 ------------------------------------------------------


def test_a_requirement_nobody_provides(write_kit: WriteKit) -> None:
    workload = kit(write_kit, "workload", "workload", requires=["node"])
    (error,) = compose_errors(workload, [kit(write_kit, "other", provides=["python"])])
    assert error == (
        "requires 'node', which no other kit in this sandbox provides: add a kit that "
        "provides it with --kit"
    )


def test_a_kit_cannot_meet_its_own_requirement(write_kit: WriteKit) -> None:
    workload = kit(write_kit, "workload", "workload", provides=["gh"], requires=["gh"])
    (error,) = compose_errors(workload, [])
    assert "(a kit cannot meet its own requirement)" in error


@pytest.mark.parametrize(
    ("provides", "requires", "at"),
    [
        ("node@22.1.0", "node >= 20.0.0, < 21.0.0", "version 22.1.0"),
        ("node@19.9.9", "node >= 20.0.0", "version 19.9.9"),
        ("node@20.0.0", "node > 20.0.0", "version 20.0.0"),
        ("node@20.1", "node = 20.1.0", "version 20.1"),
        ("node", "node >= 20", "no version"),  # unversioned meets only unconstrained
    ],
)
def test_a_requirement_at_the_wrong_version(
    write_kit: WriteKit, provides: str, requires: str, at: str
) -> None:
    workload = kit(write_kit, "workload", "workload", requires=[requires])
    (error,) = compose_errors(workload, [kit(write_kit, "node", provides=[provides])])
    assert error.startswith(f"requires '{requires}', but 'node' provides it at {at} (node (")


@pytest.mark.parametrize("integrates", ["docker-engine >= 25.0.0", "docker-engine = 24.0.6"])
def test_a_present_provider_violating_an_integration(write_kit: WriteKit, integrates: str) -> None:
    workload = kit(write_kit, "workload", "workload", integrates=[integrates])
    engine = kit(write_kit, "engine", provides=["docker-engine@24.0.7"])
    (error,) = compose_errors(workload, [engine])
    assert error.startswith(f"integrates with '{integrates}', but 'engine' provides it at")


@pytest.mark.parametrize("conflict", ["podman", "com.docker.kit/podman"])
def test_a_present_conflict(write_kit: WriteKit, conflict: str) -> None:
    workload = kit(write_kit, "workload", "workload", conflicts=[conflict])
    (error,) = compose_errors(workload, [kit(write_kit, "podman", provides=["podman@5.0.0"])])
    assert error.startswith(f"conflicts with '{conflict}', which 'podman' provides (podman (")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("claude@2.1.6", "claude@2.1.6"),  # composing claude with claude-mixin
        ("gh@1.0.0", "gh@2.0.0"),  # at any versions
        ("gh", "com.docker.kit/gh"),  # after normalization
    ],
)
def test_two_providers_of_one_name(write_kit: WriteKit, first: str, second: str) -> None:
    workload = kit(write_kit, "claude", "workload", provides=[first])
    mixin = kit(write_kit, "claude-mixin", provides=[second])
    (error,) = compose_errors(workload, [mixin])
    assert error.startswith(f"'{second}' is also provided by 'claude' (claude (")
    assert error.endswith("one name has one provider, so compose only one of these kits")


def test_kits_that_require_each_other_in_a_circle(write_kit: WriteKit) -> None:
    workload = kit(write_kit, "workload", "workload")
    a = kit(write_kit, "a", provides=["a"], requires=["b"])
    b = kit(write_kit, "b", provides=["b"], requires=["a"])
    assert compose_errors(workload, [a, b]) == [
        "kits 'a', 'b' require each other in a circle, so no order can put providers first"
    ]


def test_exactly_one_workload(write_kit: WriteKit) -> None:
    workload = kit(write_kit, "workload", "workload")
    second = kit(write_kit, "second", "workload")
    mixin = kit(write_kit, "tool")
    assert compose_errors(workload, [second]) == [
        "'second' is an agent kit, and the sandbox already has one ('workload'): "
        "pass only mixins with --kit"
    ]
    (error,) = compose_errors(mixin, [])
    assert error.startswith("'tool' is a mixin; a sandbox starts from an agent kit")


def test_every_problem_is_reported_at_once_where_it_is_written(write_kit: WriteKit) -> None:
    workload = kit(write_kit, "workload", "workload", requires=["node"], conflicts=["podman"])
    podman = kit(write_kit, "podman", provides=["podman"])
    with pytest.raises(KitError) as caught:
        compose(workload, [podman])
    where = [(i.file, i.span.line + 1) for i in caught.value.issues]
    assert where == [(workload.file, 3), (workload.file, 4)]


# ---- the §5 grammar ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "entry", "message"),
    [
        ("provides", "deb/bash@5.2.0", "the 'deb/' namespace is derived from package databases"),
        ("requires", "apk/musl", "the 'apk/' namespace is derived from package databases"),
        ("provides", "example/gh", "a namespace is reverse-DNS, two labels or more"),
        ("conflicts", "com..example/gh", "a namespace is reverse-DNS, two labels or more"),
        ("provides", "GH", "is not a capability name"),
        ("provides", "gh-", "is not a capability name"),
        ("provides", "gh@v2.0.0", "version 'v2.0.0' must look like 1.2.3"),
        ("requires", "node ~> 20", "write constraints as 'NAME OP VERSION[, OP VERSION]'"),
        ("requires", "node >= 2.0.0, < 1.0.0", "no version can meet all of these constraints"),
        ("requires", "node = 1.0.0, = 2.0.0", "no version can meet all of these constraints"),
        ("integrates", "node > 1.0.0, < 1.0.0", "no version can meet all of these constraints"),
        ("requires", "node >= 1.0.0, < 1.0.0", "no version can meet all of these constraints"),
        ("conflicts", "podman@5", "a conflicts entry is a bare name, without a version"),
    ],
)
def test_entries_parse_under_the_grammar(
    write_kit: WriteKit, key: str, entry: str, message: str
) -> None:
    text = f'schemaVersion: "3"\nkind: mixin\n{key}: [{json.dumps(entry)}]\n'
    with pytest.raises(KitError) as caught:
        load_kit(write_kit(text))
    (issue,) = caught.value.issues
    assert (issue.span.line + 1, issue.span.column + 1) == (3, len(key) + 4)
    assert message in issue.message


def test_only_provides_may_reference_args(write_kit: WriteKit) -> None:
    text = (
        'schemaVersion: "3"\nkind: mixin\nargs:\n  v: {default: "2.0.0"}\n'
        'provides: ["gh@${{ kit.args.v }}"]\nrequires: ["node >= ${{ kit.args.v }}"]\n'
    )
    with pytest.raises(KitError) as caught:
        load_kit(write_kit(text))
    (issue,) = caught.value.issues
    assert issue.span.line + 1 == 6
    assert issue.message.startswith("'requires' entries must stay literal")
    fixed = load_kit(write_kit(text.replace('requires: ["node >= ${{ kit.args.v }}"]\n', ""))).kit
    assert [(p.name, p.version) for p in fixed.provides] == [("com.docker.kit/gh", "2.0.0")]


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("1.10.0", "1.9.0", 1),
        ("2.0", "2.0", 0),
        ("2.0", "2.0.0", -1),
        ("1.0.a", "1.0.b", -1),
        ("1.0.9", "1.0.a", -1),  # a number orders before text
    ],
)
def test_version_order(a: str, b: str, order: int) -> None:
    assert compare(a, b) == order and compare(b, a) == -order


def test_touching_inclusive_bounds_are_satisfiable() -> None:
    assert parse_requirement("node >= 1.0.0, <= 1.0.0")[1] == ((">=", "1.0.0"), ("<=", "1.0.0"))
    assert parse_requirement("node = 1.2.0, >= 1.0.0, < 2")[0] == "com.docker.kit/node"
