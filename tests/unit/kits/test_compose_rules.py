"""Composition and ``extends``, rule by rule, on canonical kits built in the test: each merge
rule of reference §1.4 with the kit that would break it (a mixin's deny rules, files that
two kits both ship, a mixin's setup files), and every refusal with where it points."""

from __future__ import annotations

from typing import Any

import pytest

from sandkit.kits import model as m
from sandkit.kits.composition import apply_extends, compose, unreachable_injects
from sandkit.kits.issues import KitError, KitIssue, Severity, Span


def origin(kit: str, line: int = 3, column: int = 5) -> m.Origin:
    return m.Origin(kit=kit, file=f"/kits/{kit}/spec.yaml", line=line, column=column)


def rule(pattern: str, kit: str, **extra: Any) -> m.NetworkRule:
    return m.NetworkRule(pattern=pattern, origin=origin(kit), **extra)


def command(text: str, kit: str) -> m.Command:
    return m.Command(argv=("sh", "-c", text), user="1000", origin=origin(kit))


def setup_file(path: str, content: str, kit: str) -> m.SetupFile:
    return m.SetupFile(path=path, content=content, origin=origin(kit))


def static(path: str, kit: str, target: str = "workspace") -> m.StaticFile:
    return m.StaticFile(target=target, path=path, kit=kit)


def credential(service: str, kit: str, line: int = 7, domain: str = "api.test") -> m.Credential:
    return m.Credential(
        service=service,
        inject=(m.Inject(domain=domain, header="X-Key"),),
        origin=origin(kit, line, 9),
    )


def kit(name: str, kind: m.KitKind = m.KitKind.MIXIN, **content: Any) -> m.Kit:
    if kind is m.KitKind.AGENT:
        content.setdefault("agent", m.Agent(image="img", entrypoint=("bash",)))
    return m.Kit(
        name=name,
        kind=kind,
        schema_version="2",
        file=f"/kits/{name}/spec.yaml",
        origin=origin(name, 2, 1),
        **content,
    )


def agent(name: str = "base", **content: Any) -> m.Kit:
    return kit(name, m.KitKind.AGENT, **content)


def only_issue(error: pytest.ExceptionInfo[KitError]) -> KitIssue:
    (issue,) = error.value.issues
    return issue


# -- compose: what a mixin brings ----------------------------------------------------------
def test_a_mixins_deny_rules_join_the_agents() -> None:
    base = agent(network=m.Network(allow=(rule("a.test", "base"),), deny=(rule("x.test", "base"),)))
    strict = kit("strict", network=m.Network(deny=(rule("**.ads.test", "strict"),)))
    loose = kit("loose", network=m.Network(allow=(rule("b.test", "loose"),)))
    out = compose(base, [strict, loose])
    assert [(r.pattern, r.origin.kit) for r in out.network.deny] == [
        ("x.test", "base"),
        ("**.ads.test", "strict"),
    ]
    assert [r.pattern for r in out.network.allow] == ["a.test", "b.test"]
    # A mixin alone denying (the agent denies nothing) is kept too.
    assert [r.pattern for r in compose(agent(), [strict]).network.deny] == ["**.ads.test"]


def test_files_two_kits_ship_at_the_same_path_come_from_the_later_kit() -> None:
    base = agent(static_files=(static("Makefile", "base"), static(".bashrc", "base", "home")))
    first = kit("first", static_files=(static("Makefile", "first"), static("a.txt", "first")))
    second = kit("second", static_files=(static("Makefile", "second"),))
    out = compose(base, [first, second])
    assert {(s.target, s.path): s.kit for s in out.static_files} == {
        ("workspace", "Makefile"): "second",
        ("home", ".bashrc"): "base",
        ("workspace", "a.txt"): "first",
    }
    # The same path under home/ and workspace/ are two files.
    both = compose(
        agent(static_files=(static("x", "base"),)),
        [kit("h", static_files=(static("x", "h", "home"),))],
    )
    assert sorted((s.target, s.kit) for s in both.static_files) == [
        ("home", "h"),
        ("workspace", "base"),
    ]


def test_setup_files_of_every_kit_are_written_in_kit_order() -> None:
    base = agent(files=(setup_file("/etc/a", "base", "base"),))
    one = kit("one", files=(setup_file("/etc/b", "one", "one"), setup_file("/etc/a", "one", "one")))
    two = kit("two", files=(setup_file("/etc/c", "two", "two"),))
    out = compose(base, [one, two])
    assert [(f.path, f.content) for f in out.files] == [
        ("/etc/a", "base"),
        ("/etc/b", "one"),
        ("/etc/a", "one"),  # written after the agent's, so it is what the guest keeps
        ("/etc/c", "two"),
    ]


def test_everything_else_merges_by_its_own_rule() -> None:
    base = agent(
        environment={"SHARED": "base", "BASE": "1"},
        install=(command("base-install", "base"),),
        startup=(command("base-start", "base"),),
        agent_context=(m.AgentContext(kit="base", content="base notes"),),
        ports=(m.Port(container=8080),),
        volumes=(m.Volume(path="/data", size_bytes=1), m.Volume(path="/keep", size_bytes=5)),
        credentials=(credential("one", "base"),),
    )
    mix = kit(
        "mix",
        environment={"SHARED": "mix", "MIX": "2"},
        install=(command("mix-install", "mix"),),
        startup=(command("mix-start", "mix"),),
        agent_context=(m.AgentContext(kit="mix", content="mix notes"),),
        ports=(m.Port(container=8080), m.Port(container=9000, protocol="udp")),
        volumes=(m.Volume(path="/data", size_bytes=2),),
        credentials=(credential("two", "mix"),),
        privileged=True,
    )
    out = compose(base, [mix])
    assert out.environment == {"SHARED": "mix", "BASE": "1", "MIX": "2"}
    assert [c.argv[-1] for c in out.install] == ["base-install", "mix-install"]
    assert [c.argv[-1] for c in out.startup] == ["base-start", "mix-start"]
    assert [c.content for c in out.agent_context] == ["base notes", "mix notes"]
    assert [(p.container, p.protocol) for p in out.ports] == [
        (8080, "tcp"),
        (8080, "tcp"),
        (9000, "udp"),
    ]
    assert {v.path: v.size_bytes for v in out.volumes} == {"/data": 2, "/keep": 5}
    assert [c.service for c in out.credentials] == ["one", "two"]
    assert out.privileged
    assert not compose(base, [kit("plain")]).privileged
    assert out.agent_name == "base" and out.agent == base.agent
    assert [(k.name, k.kind, k.file) for k in out.kits] == [
        ("base", m.KitKind.AGENT, "/kits/base/spec.yaml"),
        ("mix", m.KitKind.MIXIN, "/kits/mix/spec.yaml"),
    ]


# -- compose: what is refused, and where the message points ----------------------------------
def test_a_sandbox_starts_from_an_agent_kit() -> None:
    with pytest.raises(KitError) as caught:
        compose(kit("lonely"), [])
    issue = only_issue(caught)
    assert issue == KitIssue(
        "/kits/lonely/spec.yaml",
        Span.point(1, 0),  # origin line 2, column 1, as LSP's 0-based position
        "'lonely' is a mixin; a sandbox starts from an agent kit (e.g. shell, claude) "
        "with mixins added by --kit",
        Severity.ERROR,
        "compose",
    )
    # An agent kit that lost its agent section is no agent either.
    with pytest.raises(KitError, match="'headless' is a mixin"):
        compose(kit("headless", m.KitKind.AGENT, agent=None), [])


def test_every_conflict_is_reported_at_once_where_it_was_written() -> None:
    base = agent(credentials=(credential("one", "base", line=7),))
    bad = kit("bad", credentials=(credential("one", "bad", line=11),), requires_agent="claude")
    other = agent("other")
    twin = kit("bad")
    with pytest.raises(KitError) as caught:
        compose(base, [bad, other, twin])
    found = sorted((i.file, i.span.line, i.message) for i in caught.value.issues)
    assert found == [
        (
            "/kits/bad/spec.yaml",
            1,
            'compose: duplicate kit name "bad"',
        ),
        (
            "/kits/bad/spec.yaml",
            1,
            "mixin 'bad' requires agent 'claude', but this sandbox runs 'base'",
        ),
        (
            "/kits/bad/spec.yaml",
            10,
            "credential service 'one' is already declared by base (/kits/base/spec.yaml:7:9)",
        ),
        (
            "/kits/other/spec.yaml",
            1,
            "'other' is an agent kit, and the sandbox already has one ('base'): pass only "
            "mixins with --kit",
        ),
    ]
    assert {i.code for i in caught.value.issues} == {"compose"}
    assert {i.severity for i in caught.value.issues} == {Severity.ERROR}
    assert compose(base, [kit("fine", requires_agent="base")]).kits[1].name == "fine"


# -- a secret aimed at a host no rule lets out -------------------------------------------------
@pytest.mark.parametrize(
    ("allowed", "warned"),
    [
        ("api.test", False),
        ("api.test:443", False),  # injection happens on HTTPS, port 443
        ("api.test:444", True),
        ("api.test:80", True),
        ("*.test", False),
        ("other.test", True),
    ],
)
def test_unreachable_injects_are_warnings_at_the_credential(allowed: str, warned: bool) -> None:
    content = m.KitContent(
        network=m.Network(allow=(rule(allowed, "base"),)),
        credentials=(credential("svc", "mix", line=12),),
    )
    issues = unreachable_injects(content)
    if not warned:
        assert issues == []
    else:
        assert issues == [
            KitIssue(
                "/kits/mix/spec.yaml",
                Span.point(11, 8),
                "credential 'svc' injects into 'api.test', which no kit allows; requests to "
                "it depend on the default policy",
                Severity.WARNING,
                "unreachable-inject",
            )
        ]


# -- extends -----------------------------------------------------------------------------------
def test_extends_merges_child_over_parent_field_by_field() -> None:
    parent = agent(
        "parent",
        agent=m.Agent(
            image="parent-img",
            entrypoint=("claude",),
            args=("--fast",),
            context_filename="CLAUDE.md",
            resources=m.Resources(cpus=2, memory_bytes=4 << 30),
        ),
        network=m.Network(
            allow=(rule("Example.test", "parent"), rule("p.test", "parent")),
            deny=(rule("bad.test", "parent"),),
        ),
        credentials=(credential("p", "parent"),),
        environment={"A": "parent", "P": "1"},
        install=(command("p-install", "parent"),),
        startup=(command("p-start", "parent"),),
        files=(setup_file("/etc/shared", "parent", "parent"), setup_file("/etc/p", "p", "parent")),
        static_files=(static("Makefile", "parent"), static("p.txt", "parent")),
        agent_context=(m.AgentContext(kit="parent", content="parent notes"),),
        ports=(m.Port(container=1),),
        volumes=(m.Volume(path="/p"),),
        privileged=True,
    )
    child = agent(
        "child",
        agent=m.Agent(entrypoint=("zsh",), resources=m.Resources(cpus=4)),
        network=m.Network(
            allow=(rule("example.test", "child"), rule("c.test", "child")),
            deny=(rule("bad.test", "child", methods=("POST",)), rule("BAD.test", "child")),
        ),
        credentials=(credential("c", "child"),),
        environment={"A": "child", "C": "2"},
        install=(command("c-install", "child"),),
        startup=(command("c-start", "child"),),
        files=(setup_file("/etc/shared", "child", "child"),),
        static_files=(static("Makefile", "child"),),
        agent_context=(m.AgentContext(kit="child", content="child notes"),),
        ports=(m.Port(container=2),),
        volumes=(m.Volume(path="/c"),),
        extends="parent",
    )
    out = apply_extends(child, [parent])
    assert out.name == "child" and out.extends is None
    assert out.agent == m.Agent(
        image="parent-img",  # the child left it out
        entrypoint=("zsh",),
        args=("--fast",),
        context_filename="CLAUDE.md",
        resources=m.Resources(cpus=4, memory_bytes=4 << 30),
    )
    # Rules: a union, parent first, the same rule (any case) once.
    assert [(r.pattern, r.origin.kit) for r in out.network.allow] == [
        ("Example.test", "parent"),
        ("p.test", "parent"),
        ("c.test", "child"),
    ]
    assert [(r.pattern, r.methods) for r in out.network.deny] == [
        ("bad.test", ()),
        ("bad.test", ("POST",)),  # narrower than the parent's: another rule
    ]
    assert [c.service for c in out.credentials] == ["p", "c"]
    assert out.environment == {"A": "child", "P": "1", "C": "2"}
    assert [c.argv[-1] for c in out.install] == ["p-install", "c-install"]
    assert [c.argv[-1] for c in out.startup] == ["p-start", "c-start"]
    assert [(f.path, f.content) for f in out.files] == [("/etc/p", "p"), ("/etc/shared", "child")]
    assert {s.path: s.kit for s in out.static_files} == {"Makefile": "child", "p.txt": "parent"}
    assert [c.content for c in out.agent_context] == ["parent notes", "child notes"]
    assert [p.container for p in out.ports] == [1, 2]
    assert [v.path for v in out.volumes] == ["/p", "/c"]
    assert out.privileged  # the parent asked for it


def test_extends_keeps_the_agent_of_whichever_side_has_one() -> None:
    parent = agent("parent", privileged=False)
    no_agent = kit("child", m.KitKind.AGENT, agent=None)
    assert apply_extends(no_agent, [parent]).agent == parent.agent
    assert not apply_extends(no_agent, [parent]).privileged
    assert apply_extends(agent("c2", privileged=True), [parent]).privileged
    # A chain: nearest parent first, each folded in turn.
    grand = agent("grand", environment={"G": "1", "X": "grand"})
    mid = agent("mid", environment={"X": "mid"})
    assert apply_extends(agent("leaf"), [mid, grand]).environment == {"G": "1", "X": "mid"}


@pytest.mark.parametrize("depth", [5, 6])
def test_extends_is_at_most_five_levels_deep(depth: int) -> None:
    chain = [agent(f"p{i}") for i in range(depth)]
    if depth == 5:
        assert apply_extends(agent("leaf"), chain).name == "leaf"
    else:
        with pytest.raises(KitError) as caught:
            apply_extends(agent("leaf"), chain)
        issue = only_issue(caught)
        assert (issue.file, issue.span, issue.message) == (
            "/kits/leaf/spec.yaml",
            Span.point(1, 0),
            "'extends' is nested more than 5 levels",
        )


@pytest.mark.parametrize("parent", [kit("mixy"), kit("mixy", m.KitKind.AGENT, agent=None)])
def test_extends_must_name_an_agent_kit(parent: m.Kit) -> None:
    with pytest.raises(KitError) as caught:
        apply_extends(agent("leaf"), [parent])
    issue = only_issue(caught)
    assert (issue.file, issue.span, issue.message, issue.code) == (
        "/kits/leaf/spec.yaml",
        Span.point(1, 0),
        "'extends: mixy' must name an agent kit",
        "compose",
    )


def test_extends_refuses_to_redefine_a_credential_or_a_volume() -> None:
    parent = agent(
        "parent",
        credentials=(credential("svc", "parent"), credential("only-parent", "parent")),
        volumes=(m.Volume(path="/data"), m.Volume(path="/p")),
    )
    child = agent(
        "child",
        credentials=(credential("svc", "child", line=20), credential("mine", "child")),
        volumes=(m.Volume(path="/data"), m.Volume(path="/c")),
    )
    with pytest.raises(KitError) as caught:
        apply_extends(child, [parent])
    found = sorted((i.file, i.span, i.message) for i in caught.value.issues)
    assert found == [
        (
            "/kits/child/spec.yaml",
            Span.point(1, 0),
            "volume '/data' is already declared by 'parent'",
        ),
        (
            "/kits/child/spec.yaml",
            Span.point(19, 8),
            "credential service 'svc' is already declared by the kit it extends ('parent')",
        ),
    ]
    fine = agent(
        "child", credentials=(credential("mine", "child"),), volumes=(m.Volume(path="/c"),)
    )
    out = apply_extends(fine, [parent])
    assert [c.service for c in out.credentials] == ["svc", "only-parent", "mine"]


# -- compose: volume@1 requests (v3) must match; v1/v2 volumes keep last-wins --------------
def volume(kit_name: str, strict: bool, **storage: Any) -> m.Volume:
    return m.Volume(path="/data", strict=strict, origin=origin(kit_name, 9, 11), **storage)


@pytest.mark.parametrize(("first_strict", "later_strict"), [(True, False), (False, True)])
def test_a_v3_volume_request_never_yields_to_another(
    first_strict: bool, later_strict: bool
) -> None:
    base = agent(volumes=(volume("base", first_strict, size_bytes=1 << 30),))
    mix = kit("mix", volumes=(volume("mix", later_strict, size_bytes=2 << 30),))
    with pytest.raises(KitError) as caught:
        compose(base, [mix])
    issue = only_issue(caught)
    assert (issue.file, issue.span) == ("/kits/mix/spec.yaml", Span.point(8, 10))
    assert issue.message == (
        "volume '/data' is requested as block, size 2147483648 bytes, mode unspecified, but "
        "base (/kits/base/spec.yaml:9:11) requests it as block, size 1073741824 bytes, mode "
        "unspecified: requests for one path must match exactly (sandkit picks neither); "
        "make them agree"
    )


@pytest.mark.parametrize(
    "later",
    [
        {"size_bytes": None},
        {"mode": 0o700},
        {"tmpfs": True},
    ],
)
def test_each_storage_setting_is_compared(later: dict[str, Any]) -> None:
    base = agent(volumes=(volume("base", True, size_bytes=5, mode=0o755),))
    settings = {"size_bytes": 5, "mode": 0o755, **later}
    mix = kit("mix", volumes=(volume("mix", True, **settings),))
    with pytest.raises(KitError):
        compose(base, [mix])


def test_matching_v3_requests_merge_into_the_first() -> None:
    base = agent(volumes=(volume("base", True, size_bytes=5, mode=0o755),))
    mix = kit("mix", volumes=(volume("mix", True, size_bytes=5, mode=0o755),))
    (out,) = compose(base, [mix]).volumes
    assert out.origin is not None and out.origin.kit == "base"


def test_a_merged_request_does_not_hide_the_kits_later_volumes() -> None:
    base = agent(volumes=(volume("base", True, size_bytes=5),))
    other = m.Volume(path="/cache", strict=True, origin=origin("mix", 12, 11))
    mix = kit("mix", volumes=(volume("mix", True, size_bytes=5), other))
    assert [v.path for v in compose(base, [mix]).volumes] == ["/data", "/cache"]


def test_v1_v2_volumes_still_take_the_last_request() -> None:
    base = agent(volumes=(volume("base", False, size_bytes=5),))
    mix = kit("mix", volumes=(volume("mix", False, tmpfs=True),))
    (out,) = compose(base, [mix]).volumes
    assert (out.tmpfs, out.size_bytes) == (True, None)


def test_a_v3_request_against_a_v2_volume_points_at_the_v3_one() -> None:
    base = agent(volumes=(m.Volume(path="/data", tmpfs=True),))  # v2: no origin kept
    mix = kit("mix", volumes=(volume("mix", True),))
    with pytest.raises(KitError) as caught:
        compose(base, [mix])
    issue = only_issue(caught)
    assert issue.file == "/kits/mix/spec.yaml"
    assert "but another kit requests it as tmpfs, size unspecified" in issue.message
