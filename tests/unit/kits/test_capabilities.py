"""agent-sessions@1, agent-interactive-sessions@1, agent-skill@1, agent-skills@1 and
host-mount@1, each field from its capability page (docker/sandbox-kit-spec,
docs/spec/capabilities/), and Docker's own v3 gemini kit (tests/fixtures)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sandkit.kits import load_kit, resolve
from sandkit.kits import model as m
from sandkit.kits.agent_sessions import UnsupportedVerb, Verb, list_argv, session_argv
from sandkit.kits.composition import compose
from sandkit.kits.issues import KitError
from sandkit.sandbox.kitapply import skill_steps
from tests.conftest import WriteKit

FIXTURES = Path(__file__).parents[2] / "fixtures" / "sandbox-kit-spec"
WORKLOAD = 'schemaVersion: "3"\nkind: workload\ncapabilities:\n'
MIXIN = 'schemaVersion: "3"\nkind: mixin\ncapabilities:\n'


def cap(type_: str, config: str, optional: bool = False) -> str:
    opt = "    optional: true\n" if optional else ""
    return f"  - type: com.docker.sandbox/{type_}\n{opt}    config: {config}\n"


def errors(write_kit: WriteKit, text: str, **files: str) -> list[str]:
    with pytest.raises(KitError) as caught:
        load_kit(write_kit(text, files=files))
    return [i.message for i in caught.value.issues]


def agent_of(write_kit: WriteKit, text: str) -> m.Agent:
    agent = load_kit(write_kit(text)).kit.agent
    assert agent is not None
    return agent


# ---- agent-sessions@1 -------------------------------------------------------------------


def test_headless_verbs_append_to_the_launch_with_raw_values(write_kit: WriteKit) -> None:
    agent = agent_of(
        write_kit,
        WORKLOAD
        + cap(
            "agent-sessions@1",
            '{prompt: [-p, "{{.Prompt}}"], resume: [--resume, "{{.SessionID}}"], '
            "continue: [--continue], list: [sh, -c, ids]}",
        ),
    ).model_copy(update={"entrypoint": ("agent",), "args": ("--yolo",)})
    prompt = 'it\'s "quoted" $(not run)'
    assert session_argv(agent, Verb.PROMPT, interactive=False, prompt=prompt) == [
        "agent",
        "--yolo",
        "-p",
        prompt,
    ]
    assert session_argv(agent, Verb.RESUME, interactive=False, session_id="s-1")[-2:] == [
        "--resume",
        "s-1",
    ]
    assert session_argv(agent, Verb.CONTINUE, interactive=False) == [
        "agent",
        "--yolo",
        "--continue",
    ]
    assert list_argv(agent, interactive=False) == ["sh", "-c", "ids"]


def test_a_list_string_is_a_shell_command(write_kit: WriteKit) -> None:
    agent = agent_of(write_kit, WORKLOAD + cap("agent-sessions@1", '{list: "ls -t ~/s"}'))
    assert list_argv(agent, interactive=False) == ["sh", "-c", "ls -t ~/s"]


def test_an_absent_headless_verb_is_unsupported_not_improvised(write_kit: WriteKit) -> None:
    agent = agent_of(write_kit, WORKLOAD + cap("agent-sessions@1", '{prompt: ["{{.Prompt}}"]}'))
    with pytest.raises(UnsupportedVerb, match="no 'resume' session verb"):
        session_argv(agent, Verb.RESUME, interactive=False, session_id="x")
    with pytest.raises(UnsupportedVerb, match="lists its sessions"):
        list_argv(agent, interactive=False)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{prompt: [-p]}", "'prompt' must reference {{.Prompt}}"),
        ("{resume: [--resume]}", "'resume' must reference {{.SessionID}}"),
        ("{prompt: []}", "needs at least one verb"),
        ("{}", "needs at least one verb"),
        ("{prompt: ['{{.Prompt}}'], typo: [x]}", "typo"),
    ],
)
def test_headless_declaration_rules(write_kit: WriteKit, config: str, message: str) -> None:
    assert any(message in e for e in errors(write_kit, WORKLOAD + cap("agent-sessions@1", config)))


def test_a_placeholder_may_ride_inside_a_token(write_kit: WriteKit) -> None:
    agent = agent_of(
        write_kit, WORKLOAD + cap("agent-sessions@1", '{prompt: ["--prompt={{.Prompt}}"]}')
    )
    assert session_argv(agent, Verb.PROMPT, interactive=False, prompt="-x") == ["--prompt=-x"]


def test_a_mixins_session_verbs_are_ignored_with_a_warning(write_kit: WriteKit) -> None:
    loaded = load_kit(write_kit(MIXIN + cap("agent-sessions@1", "{continue: [-c]}")))
    assert loaded.kit.agent is None
    assert any("nothing to drive" in w.message for w in loaded.warnings)


# ---- agent-interactive-sessions@1 -------------------------------------------------------


def test_interactive_verbs_and_present_empty_tails(write_kit: WriteKit) -> None:
    agent = agent_of(
        write_kit,
        WORKLOAD
        + cap(
            "agent-interactive-sessions@1",
            '{prompt: [--, "{{.Prompt}}"], continue: [], sessionPicker: [--resume], '
            'resume: [--resume, "{{.SessionID}}"], newSession: [--fresh]}',
        ),
    ).model_copy(update={"entrypoint": ("claude",)})
    assert session_argv(agent, Verb.CONTINUE, interactive=True) == ["claude"]  # [] is a verb
    assert session_argv(agent, Verb.PICKER, interactive=True) == ["claude", "--resume"]
    assert session_argv(agent, Verb.NEW, interactive=True) == ["claude", "--fresh"]
    assert session_argv(agent, Verb.PROMPT, interactive=True, prompt="-p") == [
        "claude",
        "--",
        "-p",
    ]
    assert agent.sessions is None
    with pytest.raises(UnsupportedVerb):
        session_argv(agent, Verb.PROMPT, interactive=False, prompt="x")


def test_omitted_new_session_is_the_lifecycle_interactive_launch(write_kit: WriteKit) -> None:
    agent = agent_of(
        write_kit,
        WORKLOAD
        + cap("lifecycle@1", "{interactive: [--tui]}")
        + cap("agent-interactive-sessions@1", "{continue: [-c]}"),
    ).model_copy(update={"entrypoint": ("a",)})
    assert agent.interactive_sessions is not None
    assert agent.interactive_sessions.new_session is None
    assert session_argv(agent, Verb.NEW, interactive=True) == ["a", "--tui"]
    with pytest.raises(UnsupportedVerb, match="interactive 'picker'"):
        session_argv(agent, Verb.PICKER, interactive=True)


def test_new_session_alone_is_a_declaration(write_kit: WriteKit) -> None:
    agent = agent_of(write_kit, WORKLOAD + cap("agent-interactive-sessions@1", "{newSession: []}"))
    assert agent.interactive_sessions == m.SessionVerbs(new_session=())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{}", "needs at least one key"),
        ("{list: []}", "'list' must name a command"),
        ("{list: ''}", "'list' must name a command"),
        ("{prompt: []}", "'prompt' must reference {{.Prompt}}"),
        ("{resume: [--resume]}", "'resume' must reference {{.SessionID}}"),
    ],
)
def test_interactive_declaration_rules(write_kit: WriteKit, config: str, message: str) -> None:
    text = WORKLOAD + cap("agent-interactive-sessions@1", config)
    assert any(message in e for e in errors(write_kit, text))


def test_new_session_must_match_the_lifecycle_tail(write_kit: WriteKit) -> None:
    text = (
        WORKLOAD
        + cap("lifecycle@1", "{interactive: [--tui]}")
        + cap("agent-interactive-sessions@1", "{newSession: [--other]}")
    )
    (message,) = errors(write_kit, text)
    assert "newSession ['--other'] differs from lifecycle 'interactive' ['--tui']" in message
    agreeing = text.replace("[--other]", "[--tui]")
    assert load_kit(write_kit(agreeing, "ok")).kit.agent is not None


# ---- agent-skill@1 / agent-skills@1 -----------------------------------------------------

SKILL_MD = "---\nname: review\n---\nReview code.\n"


def test_a_bundled_skill_reaches_every_skills_directory(write_kit: WriteKit) -> None:
    mixin = load_kit(
        write_kit(
            MIXIN + cap("agent-skill@1", "{path: /usr/share/skills/review}"),
            "skill",
            files={"files/skills/review/SKILL.md": SKILL_MD},
        )
    ).kit
    agent = load_kit(
        write_kit(
            WORKLOAD
            + cap("agent-skills@1", "{path: /home/agent/.claude/skills}")
            + cap("agent-skills@1", "{path: /home/agent/.gemini/skills, mode: readwrite}"),
            "agent",
        )
    ).kit
    sandbox = compose(agent, [mixin])
    (skill,) = sandbox.skills
    assert (skill.name, skill.source, skill.files) == (
        "review",
        "/usr/share/skills/review",
        ("SKILL.md",),
    )
    assert [(d.path, d.mode) for d in sandbox.skill_dirs] == [
        ("/home/agent/.claude/skills", "readonly"),
        ("/home/agent/.gemini/skills", "readwrite"),
    ]
    assert skill_steps(sandbox) == [
        ("skill", "/usr/share/skills/review/SKILL.md", "files/skills/review/SKILL.md"),
        ("skill", "/home/agent/.claude/skills/review/SKILL.md", "files/skills/review/SKILL.md"),
        ("skill", "/home/agent/.gemini/skills/review/SKILL.md", "files/skills/review/SKILL.md"),
    ]
    assert "skills" in sandbox.model_dump(by_alias=True)


def test_a_skill_not_in_the_kit_folder_is_linked(write_kit: WriteKit) -> None:
    text = (
        WORKLOAD
        + cap("agent-skill@1", "{path: /opt/tools/lint-skill, name: lint}")
        + cap("agent-skills@1", "{path: /home/agent/.claude/skills}")
    )
    sandbox = compose(load_kit(write_kit(text)).kit, [])
    assert skill_steps(sandbox) == [("kit", "/home/agent/.claude/skills/lint", None)]


@pytest.mark.parametrize("path", ["relative", "/", "/x/../y", "/x/./y", "/x//y", "/x/y/"])
@pytest.mark.parametrize("type_", ["agent-skill@1", "agent-skills@1"])
def test_skill_paths_are_canonical(write_kit: WriteKit, type_: str, path: str) -> None:
    assert errors(write_kit, MIXIN + cap(type_, f"{{path: '{path}'}}"))


@pytest.mark.parametrize("name", ["..", "a/b", ".hidden", "a" * 256])
def test_skill_names_are_one_file_name(write_kit: WriteKit, name: str) -> None:
    text = MIXIN + cap("agent-skill@1", f"{{path: /skills/src, name: '{name}'}}")
    assert any("skill name" in e for e in errors(write_kit, text))


def test_a_differently_named_source_needs_a_name(write_kit: WriteKit) -> None:
    text = MIXIN + cap("agent-skill@1", "{path: /skills/.hidden}")
    assert any("give 'name'" in e for e in errors(write_kit, text))
    assert load_kit(write_kit(text.replace("}", ", name: review}"), "ok")).kit.skills


def test_one_skill_name_twice_in_a_kit_is_refused(write_kit: WriteKit) -> None:
    text = (
        MIXIN
        + cap("agent-skill@1", "{path: /a/review}")
        + cap("agent-skill@1", "{path: /b/source, name: review}")
    )
    assert any("skill 'review' is declared twice" in e for e in errors(write_kit, text))


def test_one_name_from_two_sources_does_not_compose(write_kit: WriteKit) -> None:
    a = load_kit(write_kit(WORKLOAD + cap("agent-skill@1", "{path: /a/review}"), "a")).kit
    b = load_kit(write_kit(MIXIN + cap("agent-skill@1", "{path: /b/review}"), "b")).kit
    with pytest.raises(KitError, match="cannot be two different things"):
        compose(a, [b])
    same = load_kit(write_kit(MIXIN + cap("agent-skill@1", "{path: /a/review}"), "c")).kit
    assert len(compose(a, [same]).skills) == 1


def test_skills_directories_union_to_the_wider_mode(write_kit: WriteKit) -> None:
    a = load_kit(write_kit(WORKLOAD + cap("agent-skills@1", "{path: /s}"), "a")).kit
    b = load_kit(write_kit(MIXIN + cap("agent-skills@1", "{path: /s, mode: readwrite}"), "b")).kit
    assert [d.mode for d in compose(a, [b]).skill_dirs] == ["readwrite"]
    assert errors(write_kit, MIXIN + cap("agent-skills@1", "{path: /s, mode: all}"))


def test_two_skills_of_two_kits_both_arrive(write_kit: WriteKit) -> None:
    a = load_kit(write_kit(WORKLOAD + cap("agent-skill@1", "{path: /a/review}"), "a")).kit
    b = load_kit(write_kit(MIXIN + cap("agent-skill@1", "{path: /b/lint}"), "b")).kit
    assert [(s.name, s.source) for s in compose(a, [b]).skills] == [
        ("review", "/a/review"),
        ("lint", "/b/lint"),
    ]


def test_extends_carries_the_parents_skills_skills_dirs_and_host_mounts(
    write_kit: WriteKit,
) -> None:
    from sandkit.kits.composition import apply_extends

    def kit(name: str, skill: str, folder: str, mount: str) -> m.Kit:
        text = WORKLOAD + cap("agent-skill@1", f"{{path: {skill}}}")
        text += cap("agent-skills@1", f"{{path: {folder}}}")
        loaded = load_kit(write_kit(text, name)).kit
        return loaded.model_copy(update={"host_mounts": (host_mount(mount, name),)})

    parent = kit("parent", "/a/review", "/s", "/p")
    result = apply_extends(kit("child", "/b/lint", "/t", "/c"), [parent])
    assert [s.name for s in result.skills] == ["review", "lint"]
    assert [d.path for d in result.skill_dirs] == ["/s", "/t"]
    assert [h.path for h in result.host_mounts] == ["/p", "/c"]


# ---- host-mount@1 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{path: /x/../y}", "canonical"),
        ("{path: /x/}", "canonical"),
        ("{path: /}", "not '/' itself"),
        ("{path: /x, mode: rwx}", "must be octal"),
        ("{path: /x, host: /etc}", "host"),
    ],
)
def test_host_mount_config_is_checked(write_kit: WriteKit, config: str, message: str) -> None:
    text = WORKLOAD + cap("host-mount@1", config, optional=True)
    assert any(message in e for e in errors(write_kit, text))


def test_a_valid_host_mount_is_claimed_required_or_optional(write_kit: WriteKit) -> None:
    text = WORKLOAD + cap("host-mount@1", "{path: /home/agent/.cache/pip, mode: '0755'}")
    for spec in (text, text.replace("config:", "optional: true\n    config:")):
        (mount,) = load_kit(write_kit(spec, "ok")).kit.host_mounts
        assert (mount.path, mount.mode, mount.kit) == ("/home/agent/.cache/pip", 0o755, "ok")
        assert re.fullmatch("[0-9a-f]{20}", mount.key)


def host_mount(path: str, kit: str) -> m.HostMount:
    origin = m.Origin(kit=kit, file=f"{kit}/spec.yaml", line=3, column=5)
    return m.HostMount(path=path, kit=kit, key=f"key-{kit}", origin=origin)


def test_host_mounts_never_merge_with_mounts_or_volumes(write_kit: WriteKit) -> None:
    """Composition is ready for the day the supervisor shares host folders."""
    agent = load_kit(write_kit(WORKLOAD + cap("volume@1", "{path: /v}"), "a")).kit
    agent = agent.model_copy(update={"host_mounts": (host_mount("/cache", "a"),)})
    mixin = load_kit(write_kit(MIXIN.replace("capabilities:\n", ""), "b")).kit
    same = mixin.model_copy(update={"host_mounts": (host_mount("/cache", "b"),)})
    with pytest.raises(KitError, match="also declares a host mount there"):
        compose(agent, [same])
    on_volume = mixin.model_copy(update={"host_mounts": (host_mount("/v", "b"),)})
    with pytest.raises(KitError) as refused:
        compose(agent, [on_volume])
    assert [i.message for i in refused.value.issues] == [
        f"host mount '/v' conflicts: {agent.volumes[0].origin} declares a volume there; "
        "host-shared storage has one declaring kit and is never merged"
    ]
    unplaced = agent.model_copy(  # a volume with no origin (made, not read from a file)
        update={"volumes": (agent.volumes[0].model_copy(update={"origin": None}),)}
    )
    with pytest.raises(KitError, match="conflicts: another kit declares a volume there"):
        compose(unplaced, [on_volume])
    assert [h.path for h in compose(agent, [mixin]).host_mounts] == ["/cache"]


def test_host_mount_storage_is_keyed_on_kit_and_path(write_kit: WriteKit) -> None:
    from sandkit.kits.source import open_source
    from sandkit.kits.v3_apply import host_mount_key

    a, b = open_source(write_kit(WORKLOAD, "a")), open_source(write_kit(WORKLOAD, "b"))
    assert host_mount_key(a, "/x") == host_mount_key(a, "/x")
    assert len({host_mount_key(a, "/x"), host_mount_key(a, "/y"), host_mount_key(b, "/x")}) == 3


# ---- Docker's official v3 gemini kit --------------------------------------------------------


def test_the_official_gemini_v3_kit_loads_and_composes() -> None:
    loaded = load_kit(FIXTURES / "gemini")
    agent = loaded.kit.agent
    assert agent is not None and agent.sessions is not None
    assert agent.sessions.prompt == ("-p", "{{.Prompt}}")
    assert agent.interactive_sessions == m.SessionVerbs(
        prompt=("-i={{.Prompt}}",),
        continue_session=("--resume", "latest"),
        resume=("--resume", "{{.SessionID}}"),
    )
    assert [c.code for c in loaded.warnings] == ["warning"]  # the unbuilt dockerfile
    sandbox = resolve(str(FIXTURES / "gemini"), ["github"]).sandbox
    assert sandbox.agent.interactive_sessions == agent.interactive_sessions
    (ctx,) = [c for c in sandbox.agent_context if c.kit == sandbox.agent_name]
    assert (ctx.directory, ctx.filename) == ("/home/agent/.gemini", "GEMINI.md")


def test_the_kit_digest_of_a_sandbox_without_the_new_parts_is_unchanged() -> None:
    """Sandboxes made before skills, host mounts and session verbs existed keep their
    digest, so they do not run their install steps again."""
    from sandkit.sandbox.kitapply import _model_json

    sandbox = resolve("shell").sandbox
    text = _model_json(sandbox)
    for key in ("skills", "skill_dirs", "host_mounts", "interactive_sessions", '"sessions"'):
        assert key not in text
    with_verbs = sandbox.model_copy(
        update={"agent": sandbox.agent.model_copy(update={"sessions": m.SessionVerbs()})}
    )
    assert '"sessions"' in _model_json(with_verbs)
