"""kits/dockerfile.py: the Dockerfile subset v3 workload kits use, read into a recipe.
Each instruction form, continuations, expansion, every refusal, hostile input."""

from __future__ import annotations

import textwrap

import pytest

from sandkit.kits.dockerfile import (
    DEFAULT_SHELL,
    MAX_BYTES,
    MAX_INSTRUCTIONS,
    Copy,
    DockerfileError,
    Recipe,
    Run,
    Workdir,
    parse,
)
from sandkit.kits.dockerfile_words import MAX_NESTING

FROM = "FROM docker/sandbox-templates:shell\n"


def read(text: str, **build_args: str) -> Recipe:
    return parse(textwrap.dedent(text).lstrip("\n"), "kit.dockerfile", build_args)


def refused(text: str, **build_args: str) -> str:
    with pytest.raises(DockerfileError) as caught:
        read(text, **build_args)
    return str(caught.value)


def runs(recipe: Recipe) -> list[Run]:
    return [s for s in recipe.steps if isinstance(s, Run)]


# ---- FROM, ARG -------------------------------------------------------------------------


def test_from_names_the_base_and_its_line() -> None:
    recipe = read("# a comment\n\nFROM docker/sandbox-templates:claude-code AS agent\n")
    assert (recipe.base, recipe.base_line) == ("docker/sandbox-templates:claude-code", 3)
    assert recipe.steps == () and recipe.entrypoint is None and recipe.cmd is None
    assert (recipe.user, recipe.workdir, recipe.env) == (None, None, {})


def test_from_platform_flag_is_dropped_and_a_global_arg_expands_in_from() -> None:
    recipe = read("ARG TAG=shell\nFROM --platform=$BUILDPLATFORM docker/sandbox-templates:${TAG}\n")
    assert recipe.base == "docker/sandbox-templates:shell"


def test_arg_default_build_arg_and_platform_values() -> None:
    recipe = read(
        FROM + "ARG A=one B\nARG TARGETARCH\nARG TARGETOS\nARG TARGETPLATFORM\nRUN echo\n",
        B="given",
    )
    (run,) = runs(recipe)
    assert dict(run.env) == {
        "A": "one",
        "B": "given",
        "TARGETARCH": "amd64",
        "TARGETOS": "linux",
        "TARGETPLATFORM": "linux/amd64",
    }


def test_a_build_arg_wins_over_the_default() -> None:
    (run,) = runs(read(FROM + "ARG V=1.0\nRUN x\n", V="2.0"))
    assert dict(run.env) == {"V": "2.0"}


def test_the_platform_follows_the_host() -> None:
    recipe = parse(FROM + "ARG TARGETARCH\nRUN x\n", "f", {}, ("linux", "arm64"))
    assert dict(runs(recipe)[0].env) == {"TARGETARCH": "arm64"}


def test_an_arg_without_any_value_is_an_error_naming_the_line_and_the_fix() -> None:
    message = refused(FROM + "ARG CLAUDE_VERSION\n")
    assert message == (
        "kit.dockerfile:2: ARG CLAUDE_VERSION has no value: give it a default "
        "('ARG CLAUDE_VERSION=…'), or declare a kit arg with 'buildArg: CLAUDE_VERSION' in "
        "the kit's args"
    )


def test_a_global_arg_is_in_the_stage_only_when_declared_again() -> None:
    (run,) = runs(read("ARG V=7\n" + FROM + "ARG V\nRUN x\n"))
    assert dict(run.env) == {"V": "7"}
    (run,) = runs(read("ARG V=7\n" + FROM + "RUN x\n"))
    assert dict(run.env) == {}


def test_unused_build_args_are_a_warning() -> None:
    recipe = read(FROM, EXTRA="1")
    assert recipe.warnings == ((0, "build arg(s) EXTRA given by the kit but declared by no ARG"),)


# ---- ENV, USER, WORKDIR ----------------------------------------------------------------


def test_env_forms_quotes_and_expansion() -> None:
    recipe = read(
        FROM
        + "ARG V=1.2\n"
        + "ENV A=1 B=\"two words\" C='$V' D=$V E=${V} F=${MISSING:-fallback} G=${V:+set}\n"
        + "ENV LEGACY value with spaces\n"
        + "ENV H=${MISSING:+x} I=\\$V J=${A:-${V}}\n"
    )
    assert recipe.env == {
        "A": "1",
        "B": "two words",
        "C": "$V",
        "D": "1.2",
        "E": "1.2",
        "F": "fallback",
        "G": "set",
        "LEGACY": "value with spaces",
        "H": "",
        "I": "$V",
        "J": "1",
    }


def test_env_wins_over_arg_in_expansion_and_is_in_force_for_later_runs() -> None:
    recipe = read(FROM + "ARG X=arg\nRUN one\nENV X=env Y=$X\nRUN two\n")
    first, second = runs(recipe)
    assert dict(first.env) == {"X": "arg"}
    # One ENV line expands with the values from before it (Docker's rule).
    assert dict(second.env) == {"X": "env", "Y": "arg"}


def test_user_and_workdir_in_force_and_at_the_end() -> None:
    recipe = read(
        FROM
        + "RUN as-template-user\nUSER root:root\nWORKDIR /opt\nWORKDIR tool\nRUN as-root\n"
        + "USER agent\nWORKDIR /home/agent/workspace\n"
    )
    first, second = runs(recipe)
    assert (first.user, first.workdir) == ("agent", None)  # sbx templates end as agent
    assert (second.user, second.workdir) == ("root", "/opt/tool")
    assert (recipe.user, recipe.workdir) == ("agent", "/home/agent/workspace")
    workdirs = [s for s in recipe.steps if isinstance(s, Workdir)]
    assert [(w.path, w.user) for w in workdirs] == [
        ("/opt", "root"),
        ("/opt/tool", "root"),
        ("/home/agent/workspace", "agent"),
    ]


def test_user_and_workdir_expand_variables() -> None:
    recipe = read(FROM + "ARG U=agent D=/srv\nUSER $U\nWORKDIR ${D}/app\n")
    assert (recipe.user, recipe.workdir) == ("agent", "/srv/app")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("USER", "USER takes one user name or uid"),
        ("USER a b", "USER takes one user name or uid"),
        ("WORKDIR", "WORKDIR takes one path"),
        ("ENV 1A=x", "ENV '1A': a name is letters, digits and '_'"),
        ("ENV A", "ENV A needs a value"),
        ('ENV A="open', 'an unclosed " quote'),
        ("ENV A=${B", "'${B': no closing '}'"),
        ("ENV A=${B#x}", "sandkit expands ${NAME}, ${NAME:-default} and ${NAME:+alternative}"),
        ("ENV A=${!}", "a variable name is letters, digits, '_'"),
        ("ARG", "ARG needs a name"),
    ],
)
def test_malformed_instructions_are_refused(line: str, message: str) -> None:
    assert message in refused(FROM + line + "\n")


# ---- RUN -------------------------------------------------------------------------------


def test_run_shell_form_keeps_the_script_unexpanded_and_joins_continuations() -> None:
    recipe = read(
        FROM
        + "ARG V=1\n"
        + 'RUN echo "$V ${V}" \\\n'
        + "  # a comment inside the continuation\n"
        + "\n"
        + " && touch /x\n"
    )
    (run,) = runs(recipe)
    assert run.script == 'echo "$V ${V}"  && touch /x'
    assert run.argv is None and run.shell == DEFAULT_SHELL and run.line == 3


def test_run_exec_form_and_invalid_json_is_the_shell_form() -> None:
    recipe = read(FROM + 'RUN ["/bin/echo", "$HOME"]\nRUN [not json\n')
    first, second = runs(recipe)
    assert first.argv == ("/bin/echo", "$HOME") and first.script is None
    assert second.script == "[not json"


def test_shell_changes_the_shell_form() -> None:
    recipe = read(FROM + 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN a | b\nCMD c\n')
    (run,) = runs(recipe)
    assert run.shell == ("/bin/bash", "-o", "pipefail", "-c")
    assert recipe.cmd == ("/bin/bash", "-o", "pipefail", "-c", "c")


def test_the_escape_directive_and_the_syntax_directive() -> None:
    recipe = read("# syntax=docker/dockerfile:1\n# escape=`\n" + FROM + "RUN a `\n b\n")
    assert runs(recipe)[0].script == "a  b"
    assert recipe.warnings == ()
    other = read("# syntax=example/frontend:2\n" + FROM)
    assert other.warnings == (
        (1, "syntax 'example/frontend:2' is not used: sandkit reads the Dockerfile itself"),
    )
    assert "the escape character is \\ or `" in refused("# escape=x\n" + FROM)


def test_a_directive_after_an_instruction_is_a_comment() -> None:
    recipe = read(FROM + "# escape=`\nRUN a \\\n b\n")
    assert runs(recipe)[0].script == "a  b"


@pytest.mark.parametrize(
    "line",
    ["RUN <<EOF\necho hi\nEOF", "RUN cat <<-'END' > /x", 'RUN python3 <<"PY"'],
)
def test_heredocs_are_refused_clearly(line: str) -> None:
    message = refused(FROM + line + "\n")
    assert message.startswith("kit.dockerfile:2: heredocs (<<EOF) are not supported")
    assert "COPY it" in message


def test_run_flags_are_refused() -> None:
    message = refused(FROM + "RUN --mount=type=cache,target=/root/.npm npm ci\n")
    assert message == (
        "kit.dockerfile:2: RUN --mount is not supported: sandkit runs each step on the guest "
        "as it is (drop the flag)"
    )


def test_empty_runs_are_refused() -> None:
    assert "RUN [] runs nothing" in refused(FROM + "RUN []\n")
    assert "RUN needs a command" in refused(FROM + "RUN\n")


# ---- COPY ------------------------------------------------------------------------------


def test_copy_forms_flags_destinations_and_expansion() -> None:
    recipe = read(
        FROM
        + "ARG DIR=/opt/kit\n"
        + "WORKDIR /work\n"
        + "COPY ./scripts/a.sh $DIR/bin/a\n"
        + "COPY --chown=agent:agent --chmod=0755 b.txt c.txt ${DIR}/\n"
        + 'COPY ["d e.txt", "rel/"]\n'
        + "ADD local.txt /etc/local.txt\n"
        + "COPY . /opt/whole\n"
        + "COPY scripts/ tools/*.sh /opt/bin/\n"
    )
    copies = [s for s in recipe.steps if isinstance(s, Copy)]
    assert copies == [
        Copy(4, "scripts/a.sh", "/opt/kit/bin/a"),
        Copy(5, "b.txt", "/opt/kit", "agent:agent", 0o755, into=True),
        Copy(5, "c.txt", "/opt/kit", "agent:agent", 0o755, into=True),
        Copy(6, "d e.txt", "/work/rel", into=True),
        Copy(7, "local.txt", "/etc/local.txt"),
        Copy(8, "", "/opt/whole"),  # the whole kit folder
        Copy(9, "scripts", "/opt/bin", into=True),
        Copy(9, "tools/*.sh", "/opt/bin", into=True),  # the kit folder says which files
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("COPY ../secret /x", "the source must stay inside the kit folder (no '..')"),
        ("COPY a/../../b /x", "the source must stay inside the kit folder"),
        ("COPY ./.. /x", "the source must stay inside the kit folder"),
        ("COPY /etc/passwd /x", "an absolute source; sources are files of the kit folder"),
        ("COPY ../*/x /y", "the source must stay inside the kit folder"),
        ("COPY --from=build /out /", "COPY --from (another stage or image) is not supported"),
        ("COPY --link a /x", "COPY --link is not supported (sandkit honours --chown and --chmod)"),
        ("COPY --chmod=u+x a /x", "--chmod=u+x: give an octal mode like 0755"),
        ("COPY a", "COPY takes a source in the kit folder and a destination"),
        ("COPY <<EOF /x", "COPY with a heredoc is not supported"),
        ("ADD https://example.com/x.tgz /x", "ADD of 'https://example.com/x.tgz' (a URL)"),
        ("ADD git@example.com:a/b.git /x", "(a URL) is not supported"),
        ("ADD tools.tar.gz /opt/", "ADD of the archive 'tools.tar.gz' (Docker unpacks it)"),
    ],
)
def test_copy_refusals(line: str, message: str) -> None:
    got = refused(FROM + line + "\n")
    assert got.startswith("kit.dockerfile:2: ") and message in got


# ---- ENTRYPOINT and CMD ----------------------------------------------------------------


def test_entrypoint_and_cmd_exec_forms_are_not_expanded() -> None:
    recipe = read(FROM + 'ARG V=1\nENTRYPOINT ["tool", "$V"]\nCMD ["--flag"]\n')
    assert (recipe.entrypoint, recipe.cmd, recipe.entrypoint_line) == (
        ("tool", "$V"),
        ("--flag",),
        3,
    )
    assert recipe.launch(("base",), ("base-arg",)) == (("tool", "$V"), ("--flag",))


def test_shell_forms_run_through_the_shell() -> None:
    recipe = read(FROM + "ENTRYPOINT exec tool --x\nCMD ignored\n")
    assert recipe.entrypoint == ("/bin/sh", "-c", "exec tool --x")
    # A shell-form ENTRYPOINT takes no CMD (Docker's rule).
    assert recipe.launch((), ()) == (("/bin/sh", "-c", "exec tool --x"), ())


def test_docker_rules_for_combining_with_the_base_image() -> None:
    only_entry = read(FROM + 'ENTRYPOINT ["mine"]\n')
    assert only_entry.launch(("claude",), ("--skip",)) == (("mine",), ())  # CMD reset
    only_cmd = read(FROM + 'CMD ["--other"]\n')
    assert only_cmd.launch(("claude",), ("--skip",)) == (("claude",), ("--other",))
    neither = read(FROM)
    assert neither.launch(("claude",), ("--skip",)) == (("claude",), ("--skip",))
    cmd_then_entry = read(FROM + 'CMD ["a"]\nENTRYPOINT ["b"]\n')  # same stage: kept
    assert cmd_then_entry.launch((), ()) == (("b",), ("a",))
    last_wins = read(FROM + 'ENTRYPOINT ["x"]\nENTRYPOINT ["y"]\n')
    assert last_wins.launch((), ()) == (("y",), ())


def test_an_empty_entrypoint_needs_a_command() -> None:
    assert "ENTRYPOINT needs a command" in refused(FROM + "ENTRYPOINT\n")


# ---- the rest: ignored or refused ------------------------------------------------------


def test_harmless_instructions_are_ignored_with_a_warning() -> None:
    recipe = read(
        FROM + "EXPOSE 8080\nLABEL a=b\nHEALTHCHECK NONE\nSTOPSIGNAL SIGTERM\nMAINTAINER me\n"
    )
    assert [(line, w.split(" is ignored")[0]) for line, w in recipe.warnings] == [
        (2, "EXPOSE"),
        (3, "LABEL"),
        (4, "HEALTHCHECK"),
        (5, "STOPSIGNAL"),
        (6, "MAINTAINER"),
    ]
    assert "port@1" in recipe.warnings[0][1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (FROM + "VOLUME /data\n", "kit.dockerfile:2: VOLUME is not supported: declare the path "
         "with the volume@1 capability"),
        (FROM + "ONBUILD RUN x\n", "kit.dockerfile:2: ONBUILD is not supported"),
        (FROM + "FROM scratch\nCOPY --from=0 / /\n", "kit.dockerfile:2: a second FROM "
         "(a multi-stage build) is not supported"),
        (FROM + "FETCH x\n", "kit.dockerfile:2: 'FETCH' is not a Dockerfile instruction sandkit "
         "replays"),
        ("RUN x\n" + FROM, "kit.dockerfile:1: RUN before FROM: only ARG may come before FROM"),
        ("# only a comment\n", "kit.dockerfile: no FROM: a workload's recipe starts FROM a "
         "sandbox template"),
        ("FROM\n", "FROM takes one image"),
        ("FROM a b\n", "FROM takes one image"),
        (FROM + "SHELL /bin/bash\n", 'SHELL takes the JSON form'),
    ],
)  # fmt: skip
def test_other_instructions_are_errors_naming_the_line(text: str, message: str) -> None:
    assert message in refused(text)


def test_instructions_are_case_insensitive() -> None:
    recipe = read('from docker/sandbox-templates:shell\nrun x\nentrypoint ["y"]\n')
    assert runs(recipe)[0].script == "x" and recipe.entrypoint == ("y",)


# ---- hostile input ---------------------------------------------------------------------


def test_a_huge_file_is_refused_before_it_is_read() -> None:
    text = FROM + "RUN " + "x" * MAX_BYTES + "\n"
    assert (
        refused(text) == f"kit.dockerfile: larger than {MAX_BYTES >> 10} KiB: keep the recipe short"
    )


def test_too_many_instructions_are_refused() -> None:
    text = FROM + "RUN x\n" * MAX_INSTRUCTIONS
    assert f"more than {MAX_INSTRUCTIONS} instructions" in refused(text)


def test_a_nul_byte_is_refused_naming_its_line() -> None:
    assert refused(FROM + "RUN a\0b\n") == "kit.dockerfile:2: a NUL byte: a Dockerfile is text"


def test_deep_nesting_is_refused_without_recursing_the_stack_away() -> None:
    depth = 5000
    text = FROM + "ENV A=" + "${X:-" * depth + "v" + "}" * depth + "\n"
    assert f"variables nested more than {MAX_NESTING} deep" in refused(text)
    ok = FROM + "ENV A=" + "${X:-" * MAX_NESTING + "v" + "}" * MAX_NESTING + "\n"
    assert read(ok).env == {"A": "v"}


def test_a_huge_expansion_is_bounded() -> None:
    # One variable doubled line by line: each word stays under the word limit or is refused.
    lines = ["ENV A=xxxxxxxxxxxxxxxx"] + ["ENV A=$A$A" for _ in range(20)]
    assert "a word longer than" in refused(FROM + "\n".join(lines) + "\n")


def test_windows_line_endings_and_a_final_continuation() -> None:
    recipe = read(FROM.replace("\n", "\r\n") + "RUN a \\\r\n")
    assert runs(recipe)[0].script == "a"


@pytest.mark.parametrize(
    "line",
    [
        'COPY ["' + "$A" * 40 + '", "/x"]',
        "ENV B=${X:-" + "$A" * 40 + "}",
        "ENV B=" + "$A" * 40,
    ],
)
def test_many_references_to_a_long_value_are_bounded(line: str) -> None:
    text = FROM + "ENV A=" + "x" * (4 << 10) + "\n" + line + "\n"
    assert "a word longer than 64 KiB" in refused(text)
