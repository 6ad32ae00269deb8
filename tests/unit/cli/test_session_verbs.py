"""`sandkit run KIT --prompt/--continue/--resume`: the agent kit's session verbs
(agent-sessions@1; agent-interactive-sessions@1 with a terminal), by agent_command's one
rule, from the kits the sandbox runs (the supervisor's agent-argv answers with it; the
VM test tests/vm/test_v3_workload.py runs it end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandkit.cli import build_parser
from sandkit.cli.run import session_request
from sandkit.kits import resolve
from sandkit.kits.agent_sessions import UnsupportedVerb, Verb
from sandkit.sandbox.agent_command import SessionRequest, agent_argv
from sandkit.sandbox.store import Config
from tests.conftest import WriteKit

CLAUDE = Path(__file__).parents[2] / "fixtures" / "sandbox-kit-spec" / "claude"
HEADLESS_ONLY = """\
schemaVersion: "3"
kind: workload
build: |
  FROM docker/sandbox-templates:shell
  ENTRYPOINT ["tool"]
  CMD ["--yes"]
capabilities:
  - type: com.docker.sandbox/agent-sessions@1
    config:
      prompt: ["--prompt={{.Prompt}}"]
"""


def verb_argv(
    config: Config, session: SessionRequest, extra: list[str], interactive: bool
) -> list[str]:
    """What the supervisor's agent-argv answers: the kits resolved as it resolves them,
    then agent_command's rule."""
    sandbox = resolve(config.agent, config.kits, config.kit_args, defaults=config.arg_defaults)
    return agent_argv(sandbox.sandbox, extra, interactive, session)


def config(agent: Path) -> Config:
    # arg_defaults set: the host's registries are not looked up.
    return Config(name="t", agent=str(agent), arg_defaults={"npmRegistryHost": "npm.test"})


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--prompt", "fix it"], SessionRequest(Verb.PROMPT, prompt="fix it")),
        (["--continue"], SessionRequest(Verb.CONTINUE)),
        (["--resume", "abc-1"], SessionRequest(Verb.RESUME, session_id="abc-1")),
        ([], None),
    ],
)
def test_run_parses_the_session_verbs(flags: list[str], expected: SessionRequest | None) -> None:
    args = build_parser("run").parse_args(["run", "claude", ".", *flags])
    assert session_request(args) == expected


def test_the_verbs_are_exclusive_and_only_for_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("run").parse_args(["run", "claude", "--continue", "--resume", "x"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser("create").parse_args(["create", "claude", "--prompt", "x"])


def test_headless_verbs_of_the_official_claude_kit() -> None:
    c = config(CLAUDE)
    launch = ["claude", "--dangerously-skip-permissions"]
    prompt = SessionRequest(Verb.PROMPT, prompt="hi; rm -rf /")
    assert verb_argv(c, prompt, [], interactive=False) == [*launch, "-p", "hi; rm -rf /"]
    assert verb_argv(c, SessionRequest(Verb.CONTINUE), [], False) == [*launch, "--continue"]
    resume = SessionRequest(Verb.RESUME, session_id="s-1")
    assert verb_argv(c, resume, ["--model", "opus"], False) == [
        *launch,
        "--resume",
        "s-1",
        "--model",
        "opus",
    ]


def test_with_a_terminal_the_interactive_verbs_are_used() -> None:
    prompt = SessionRequest(Verb.PROMPT, prompt="-starts-with-a-dash")
    assert verb_argv(config(CLAUDE), prompt, [], interactive=True) == [
        "claude",
        "--dangerously-skip-permissions",
        "--",
        "-starts-with-a-dash",
    ]


def test_a_kit_with_only_headless_verbs_runs_them_in_a_terminal(write_kit: WriteKit) -> None:
    root = write_kit(HEADLESS_ONLY, "tool")
    prompt = SessionRequest(Verb.PROMPT, prompt="hi")
    for tty in (False, True):
        assert verb_argv(config(root), prompt, [], tty) == ["tool", "--yes", "--prompt=hi"]


def test_an_undeclared_verb_is_an_error_naming_the_kit(write_kit: WriteKit) -> None:
    root = write_kit(HEADLESS_ONLY, "tool")
    with pytest.raises(UnsupportedVerb) as caught:
        verb_argv(config(root), SessionRequest(Verb.RESUME, session_id="x"), [], False)
    assert str(caught.value) == (
        "kit 'tool' declares no 'resume' session verb (agent-sessions@1), so this agent "
        "cannot do that"
    )


def test_a_kit_without_verbs_says_so(write_kit: WriteKit) -> None:
    root = write_kit('schemaVersion: "3"\nkind: workload\n', "plain")
    with pytest.raises(UnsupportedVerb, match="kit 'plain' declares no 'continue' session verb"):
        verb_argv(config(root), SessionRequest(Verb.CONTINUE), [], False)


def test_without_a_verb_the_run_rule_is_unchanged() -> None:
    from sandkit.kits import resolve

    sandbox = resolve(str(CLAUDE)).sandbox
    assert agent_argv(sandbox, ["--model", "opus"], True) == [
        "claude",
        "--dangerously-skip-permissions",
        "--model",
        "opus",
    ]
    assert agent_argv(sandbox, ["bash"], True) == ["bash"]
