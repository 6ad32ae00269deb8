"""A v3 workload's Dockerfile replayed on sandkit's guest (kits/convert_v3.py): FROM a
template, RUN/COPY/WORKDIR as install steps in order, ENV as the environment,
ENTRYPOINT/CMD as the agent's command; Docker's own claude kit (tests/fixtures)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from sandkit.errors import SandkitError
from sandkit.kits import load_kit, resolve
from sandkit.kits import model as m
from sandkit.kits.images import image_variant
from sandkit.kits.issues import KitError
from sandkit.sandbox.agent_command import agent_argv
from tests.conftest import WriteKit

FIXTURES = Path(__file__).parents[2] / "fixtures" / "sandbox-kit-spec"
WORKLOAD = 'schemaVersion: "3"\nkind: workload\n'
RECIPE = """\
FROM docker/sandbox-templates:shell
ARG WORD=hello
USER root
RUN printf '#!/bin/sh\\necho "$@"\\n' > /usr/local/bin/say && chmod 0755 /usr/local/bin/say
COPY --chmod=0600 --chown=agent note.txt /opt/kit/
ENV KIT_MODE=replayed
USER agent
WORKDIR /home/agent/workspace
ENTRYPOINT ["say", "$WORD"]
CMD ["--default"]
"""


def kit_with(write_kit: WriteKit, recipe: str, spec: str = WORKLOAD, **files: str) -> Path:
    return write_kit(spec, "tool", files={"tool.dockerfile": recipe, **files})


def errors_of(caught: pytest.ExceptionInfo[KitError]) -> list[str]:
    return [i.message for i in caught.value.issues if i.severity == "error"]


def test_a_workload_recipe_becomes_install_steps_environment_and_command(
    write_kit: WriteKit,
) -> None:
    kit = load_kit(kit_with(write_kit, RECIPE, **{"note.txt": "a note\n"})).kit
    agent = kit.agent
    assert agent is not None
    assert (agent.entrypoint, agent.args) == (("say", "$WORD"), ("--default",))
    assert (agent.user, agent.workdir, agent.image) == (
        "agent",
        "/home/agent/workspace",
        "docker/sandbox-templates:shell",
    )
    assert kit.environment == {"KIT_MODE": "replayed"}
    run, copy, workdir = kit.install
    assert run.user == "0" and run.argv[:2] == ("env", "WORD=hello")
    assert run.argv[2:4] == ("/bin/sh", "-c") and run.argv[4].startswith("printf ")
    assert (run.origin.file, run.origin.line) == (
        str(kit_with(write_kit, RECIPE).joinpath("tool.dockerfile")),
        4,
    )
    assert copy.user == "0" and copy.argv[4:] == (
        "agent",
        "/opt/kit/note.txt",
        "600",
        base64.b64encode(b"a note\n").decode(),
        "",  # into /opt/kit/ anyway
    )
    assert workdir.argv[4:] == ("/home/agent/workspace", "agent")


def test_the_install_steps_do_what_docker_would(write_kit: WriteKit, tmp_path: Path) -> None:
    """The COPY and WORKDIR steps' scripts, run by a real shell on this machine, leave the
    file and the folder Docker would (chown to this user, so no root is needed)."""
    import getpass

    recipe = (
        "FROM docker/sandbox-templates:shell\n"
        f"COPY --chmod=0640 --chown={getpass.getuser()} note.txt {tmp_path}/out/sub/\n"
        f"USER {getpass.getuser()}\nWORKDIR {tmp_path}/wd\n"
    )
    kit = load_kit(kit_with(write_kit, recipe, **{"note.txt": "bytes é\n"})).kit
    for step in kit.install:
        subprocess.run(step.argv, check=True)
    written = tmp_path / "out" / "sub" / "note.txt"
    assert written.read_text() == "bytes é\n" and written.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "wd").is_dir()


def test_a_run_step_sees_its_args_env_and_workdir(write_kit: WriteKit, tmp_path: Path) -> None:
    recipe = (
        "FROM docker/sandbox-templates:shell\nARG A=1\nENV B=two\n"
        f"WORKDIR {tmp_path}\n"
        'RUN echo "$A $B $(pwd)" > out.txt\n'
        'RUN ["sh", "-c", "echo exec-form >> out.txt"]\n'
    )
    kit = load_kit(kit_with(write_kit, recipe)).kit
    for step in kit.install[1:]:  # the WORKDIR step chowns to 'agent', absent here
        subprocess.run(step.argv, check=True)
    assert (tmp_path / "out.txt").read_text() == f"1 two {tmp_path}\nexec-form\n"


def test_build_args_come_from_the_kits_build_arg_args(write_kit: WriteKit) -> None:
    spec = WORKLOAD + "args:\n  version:\n    default: '1.0'\n    buildArg: TOOL_VERSION\n"
    recipe = "FROM docker/sandbox-templates:shell\nARG TOOL_VERSION\nRUN get $TOOL_VERSION\n"
    root = kit_with(write_kit, recipe, spec)
    assert load_kit(root).kit.install[0].argv[1] == "TOOL_VERSION=1.0"
    assert load_kit(root, {"version": "2.0"}).kit.install[0].argv[1] == "TOOL_VERSION=2.0"


def test_an_inline_build_block_is_replayed(write_kit: WriteKit) -> None:
    spec = WORKLOAD + 'build: |\n  FROM docker/sandbox-templates:shell\n  CMD ["hi"]\n'
    agent = load_kit(write_kit(spec)).kit.agent
    assert agent is not None and agent.args == ("hi",)


def test_a_dockerfile_key_names_the_recipe(write_kit: WriteKit) -> None:
    spec = WORKLOAD + "dockerfile: recipes/agent.dockerfile\n"
    root = write_kit(
        spec,
        files={
            "recipes/agent.dockerfile": 'FROM docker/sandbox-templates:shell\nENTRYPOINT ["x"]\n'
        },
    )
    agent = load_kit(root).kit.agent
    assert agent is not None and agent.entrypoint == ("x",)


def test_a_template_agent_brings_the_built_in_kits_install_and_command(
    write_kit: WriteKit,
) -> None:
    from sandkit.kits.builtin import builtin_dir

    builtin = load_kit(builtin_dir() / "claude").kit
    kit = load_kit(kit_with(write_kit, "FROM docker/sandbox-templates:claude-code\n")).kit
    assert kit.agent is not None
    assert (kit.agent.entrypoint, kit.agent.args) == (
        ("claude",),
        ("--dangerously-skip-permissions",),
    )
    assert kit.install == builtin.install
    # A CMD of the recipe replaces the template's; an ENTRYPOINT resets it.
    cmd = load_kit(kit_with(write_kit, 'FROM docker/sandbox-templates:claude-code\nCMD ["-c"]\n'))
    assert cmd.kit.agent is not None and cmd.kit.agent.entrypoint + cmd.kit.agent.args == (
        "claude",
        "-c",
    )


def test_docker_templates_boot_the_docker_variant(write_kit: WriteKit) -> None:
    root = kit_with(write_kit, "FROM dhi.io/sbx-templates:shell-docker\n")
    assert image_variant(resolve(str(root)).sandbox) == "docker"
    plain = kit_with(write_kit, "FROM docker/sandbox-templates:shell\n")
    assert image_variant(resolve(str(plain)).sandbox) == "base"


def test_a_base_that_is_no_template_is_an_error_naming_the_line(write_kit: WriteKit) -> None:
    root = kit_with(write_kit, "# base\nFROM debian:12\n")
    with pytest.raises(KitError) as caught:
        load_kit(root)
    (message,) = errors_of(caught)
    assert message.startswith(f"{root}/tool.dockerfile:2: FROM debian:12: sandkit replays")
    assert "start FROM docker/sandbox-templates:shell" in message


def test_a_dockerfile_error_is_a_kit_error_with_the_file_and_line(write_kit: WriteKit) -> None:
    root = kit_with(write_kit, "FROM docker/sandbox-templates:shell\nRUN <<EOF\nx\nEOF\n")
    with pytest.raises(KitError) as caught:
        load_kit(root)
    (issue,) = [i for i in caught.value.issues if i.severity == "error"]
    assert issue.code == "dockerfile" and issue.span.line == 1  # at the spec's 'kind:'
    assert issue.message.startswith(f"{root}/tool.dockerfile:2: heredocs (<<EOF)")


def test_a_copy_source_missing_from_the_kit_is_an_error(write_kit: WriteKit) -> None:
    root = kit_with(write_kit, "FROM docker/sandbox-templates:shell\nCOPY gone.sh /x\n")
    with pytest.raises(KitError) as caught:
        load_kit(root)
    assert errors_of(caught) == [
        f"{root}/tool.dockerfile:2: COPY gone.sh: no such file in the kit folder {root}; add "
        "it there or fix the path"
    ]


def test_a_copy_through_a_symlink_out_of_the_kit_is_refused(
    write_kit: WriteKit, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_text("s")
    root = kit_with(write_kit, "FROM docker/sandbox-templates:shell\nCOPY link /x\n")
    (root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(KitError) as caught:
        load_kit(root)
    assert "COPY link: no such file in the kit folder" in errors_of(caught)[0]


def test_a_large_copy_is_refused(write_kit: WriteKit) -> None:
    root = kit_with(
        write_kit, "FROM docker/sandbox-templates:shell\nCOPY big /x\n", big="x" * (65 << 10)
    )
    with pytest.raises(KitError) as caught:
        load_kit(root)
    assert "COPY big: big is larger than 64 KiB" in errors_of(caught)[0]


def _replayed(root: Path, out: Path) -> dict[str, tuple[str, int]]:
    """Run the kit's COPY steps in this machine's shell (owned by this user, so no root
    is needed) and read back what they left under ``out``: path → (text, mode)."""
    for step in load_kit(root).kit.install:
        if step.argv[:2] == ("sh", "-c") and "base64" in step.argv[2]:
            subprocess.run(step.argv, check=True)
    return {
        p.relative_to(out).as_posix(): (p.read_text(), p.stat().st_mode & 0o7777)
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def _owner() -> str:
    import getpass

    return getpass.getuser()


def test_folders_the_whole_kit_and_wildcards_are_copied_as_docker_copies_them(
    write_kit: WriteKit, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    recipe = (
        "FROM docker/sandbox-templates:shell\n"
        f"COPY --chown={_owner()} scripts {out}/bin\n"  # a folder: its contents
        f"COPY --chown={_owner()} tools/*.sh lib/ {out}/many/\n"  # several sources: into
        f"COPY --chown={_owner()} tools/one.* {out}/renamed\n"  # one match: to the name
        f"COPY --chown={_owner()} --chmod=0600 . {out}/kit\n"  # the whole kit folder
    )
    files = {
        "scripts/run.sh": "#!/bin/sh\n",
        "scripts/sub/deep.txt": "deep\n",
        "tools/a.sh": "a\n",
        "tools/b.sh": "b\n",
        "tools/one.txt": "one\n",
        "lib/x.py": "x\n",
    }
    root = kit_with(write_kit, recipe, **files)
    (root / "scripts" / "run.sh").chmod(0o4755)  # Docker keeps the mode; never set-id
    got = _replayed(root, out)
    assert {k: v for k, v in got.items() if not k.startswith("kit/")} == {
        "bin/run.sh": ("#!/bin/sh\n", 0o755),
        "bin/sub/deep.txt": ("deep\n", 0o644),
        "many/a.sh": ("a\n", 0o644),
        "many/b.sh": ("b\n", 0o644),
        "many/x.py": ("x\n", 0o644),
        "renamed": ("one\n", 0o644),
    }
    kit = {k.removeprefix("kit/"): v for k, v in got.items() if k.startswith("kit/")}
    assert set(kit) == {*files, "spec.yaml", "tool.dockerfile"}
    assert {mode for _, mode in kit.values()} == {0o600}


def test_a_zip_kits_folder_is_copied_too(write_kit: WriteKit, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "out"
    recipe = f"FROM docker/sandbox-templates:shell\nCOPY --chown={_owner()} scripts/ {out}/\n"
    root = kit_with(write_kit, recipe, **{"scripts/a.sh": "a\n", "scripts/b/c.sh": "c\n"})
    archive = Path(shutil.make_archive(str(tmp_path / "tool"), "zip", root))
    assert _replayed(archive, out) == {"a.sh": ("a\n", 0o644), "b/c.sh": ("c\n", 0o644)}


def test_wildcards_and_folders_never_go_through_a_link(write_kit: WriteKit, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.sh").write_text("secret\n")
    out = tmp_path / "out"
    recipe = (
        "FROM docker/sandbox-templates:shell\n"
        f"COPY --chown={_owner()} * {out}/star/\n"
        f"COPY --chown={_owner()} tools {out}/tools/\n"
    )
    root = kit_with(write_kit, recipe, **{"tools/mine.sh": "mine\n"})
    (root / "tools" / "linked").symlink_to(outside)
    (root / "tools" / "file-link.sh").symlink_to(outside / "secret.sh")
    (root / "away").symlink_to(outside)
    got = _replayed(root, out)
    assert "secret\n" not in {text for text, _ in got.values()}
    assert got["tools/mine.sh"] == ("mine\n", 0o644)


@pytest.mark.parametrize(
    ("line", "files", "message"),
    [
        ("COPY *.md /x", {"a.md": "", "b.md": ""}, "COPY *.md: it names 2 files or folders, "
         "so the destination must be a folder ending in '/': /x/"),
        ("COPY nope/*.sh /x/", {"a.sh": ""}, "COPY nope/*.sh: no such file in the kit folder"),
        ("COPY many /x/", {f"many/{i}": "" for i in range(257)}, "COPY many: more than 256 "
         "files; copy fewer, or fetch them in a RUN step"),
        ("COPY big /x/", {f"big/{i}": "x" * (60 << 10) for i in range(9)}, "COPY big: its "
         "files come to more than 512 KiB; download large files in a RUN step instead"),
    ],
)  # fmt: skip
def test_copies_that_cannot_be_replayed_say_why(
    write_kit: WriteKit, line: str, files: dict[str, str], message: str
) -> None:
    root = kit_with(write_kit, f"FROM docker/sandbox-templates:shell\n{line}\n", **files)
    with pytest.raises(KitError) as caught:
        load_kit(root)
    (error,) = errors_of(caught)
    assert error.startswith(f"{root}/tool.dockerfile:2: {message}")


def test_a_named_missing_dockerfile_loads_but_cannot_run(write_kit: WriteKit) -> None:
    root = write_kit(WORKLOAD + "dockerfile: ./gemini.dockerfile\n", "gemini")
    loaded = load_kit(root)
    (warning,) = loaded.warnings
    assert warning.span.line == 2 and warning.message.startswith(
        "the agent's command comes from its Dockerfile's ENTRYPOINT; './gemini.dockerfile' "
        f"is not in the kit folder {root}"
    )
    sandbox = resolve(str(root)).sandbox
    with pytest.raises(SandkitError, match="agent kit 'gemini': the agent's command comes from"):
        agent_argv(sandbox, [], interactive=True)
    # A command given in full still runs (it replaces the missing one).
    assert agent_argv(sandbox, ["bash"], interactive=False) == ["bash"]


def test_no_recipe_at_all_is_a_declaration_only_workload(write_kit: WriteKit) -> None:
    loaded = load_kit(write_kit(WORKLOAD))
    assert loaded.warnings == () and loaded.kit.install == ()
    assert agent_argv(resolve(str(loaded.source.folder)).sandbox, [], False) == ["bash", "-l"]


def test_a_mixins_recipe_is_not_replayed_and_says_so(write_kit: WriteKit) -> None:
    root = write_kit(
        'schemaVersion: "3"\nkind: mixin\ndockerfile: ./m.dockerfile\n',
        files={"m.dockerfile": "FROM scratch\n"},
    )
    loaded = load_kit(root)
    (warning,) = loaded.warnings
    assert "a mixin's 'dockerfile' is not replayed by sandkit" in warning.message
    assert loaded.kit.install == ()


def test_recipe_warnings_name_the_file_and_line(write_kit: WriteKit) -> None:
    root = kit_with(write_kit, "FROM docker/sandbox-templates:shell\nEXPOSE 80\nUSER nobody\n")
    messages = [w.message for w in load_kit(root).warnings]
    assert messages[0].startswith(f"{root}/tool.dockerfile:2: EXPOSE is ignored")
    assert "the last USER is 'nobody', but sandkit runs the agent as 'agent'" in messages[1]


def test_an_unknown_templates_agent_is_a_warning(write_kit: WriteKit) -> None:
    root = kit_with(write_kit, "FROM docker/sandbox-templates:cursor\n")
    (warning,) = load_kit(root).warnings
    assert "no built-in kit for the 'cursor' template's agent" in warning.message


def test_the_recipe_env_yields_to_the_kits_arg_exports(write_kit: WriteKit) -> None:
    spec = WORKLOAD + "args:\n  mode:\n    default: from-arg\n    env: MODE\n"
    root = kit_with(
        write_kit, "FROM docker/sandbox-templates:shell\nENV MODE=image OTHER=1\n", spec
    )
    assert load_kit(root).kit.environment == {"MODE": "from-arg", "OTHER": "1"}


# ---- Docker's official claude kit ------------------------------------------------------


def test_the_official_claude_v3_kit_resolves_to_its_dockerfiles_agent() -> None:
    loaded = load_kit(FIXTURES / "claude")
    assert loaded.warnings == ()
    sandbox = resolve(str(FIXTURES / "claude")).sandbox
    agent = sandbox.agent
    assert agent_argv(sandbox, [], interactive=True) == ["claude", "--dangerously-skip-permissions"]
    assert (agent.user, agent.workdir) == ("agent", "/home/agent/workspace")
    assert agent.image == "dhi.io/sbx-templates:claude-code-docker"
    assert image_variant(sandbox) == "docker"
    assert sandbox.environment["IS_SANDBOX"] == "1"
    assert {"CLAUDE_MODEL", "CLAUDE_REASONING_EFFORT"} <= set(sandbox.environment)
    # The template's agent (the built-in claude kit's npm install), then the Dockerfile's
    # steps in order, then the kit's lifecycle install hooks.
    by_line = [(c.origin.file.rsplit("/", 1)[-1], c.origin.line, c.user) for c in sandbox.install]
    assert by_line[:8] == [
        ("spec.yaml", 68, "0"),  # kits/claude/spec.yaml
        ("claude.dockerfile", 14, "0"),
        ("claude.dockerfile", 31, "0"),
        ("claude.dockerfile", 37, "0"),
        ("claude.dockerfile", 38, "0"),
        ("claude.dockerfile", 43, "0"),
        ("claude.dockerfile", 44, "0"),
        ("claude.dockerfile", 49, "0"),
    ]
    assert len(sandbox.install) == 12
    first_run = sandbox.install[1]
    assert first_run.argv[:3] == ("env", "CLAUDE_VERSION=2.1.289", "TARGETARCH=amd64") or (
        first_run.argv[2] == "TARGETARCH=arm64"
    )
    hook = sandbox.install[5]
    script = (FIXTURES / "claude" / "scripts" / "sbx-agent-hook.sh").read_bytes()
    mode = (FIXTURES / "claude" / "scripts" / "sbx-agent-hook.sh").stat().st_mode & 0o777
    assert hook.argv[4:] == (
        "0:0",
        "/usr/local/bin/sbx-claude-hook",
        f"{mode:o}",  # the file's own mode, as Docker keeps it (its RUN chmods it)
        base64.b64encode(script).decode(),
        "sbx-agent-hook.sh",  # its name, should the guest have a folder at that path
    )
    assert sandbox.agent.sessions == m.SessionVerbs(
        prompt=("-p", "{{.Prompt}}"),
        continue_session=("--continue",),
        resume=("--resume", "{{.SessionID}}"),
        list_command=("node", "/opt/claude-sessions/interactive-sessions.mjs"),
    )


def test_the_claude_kits_version_arg_reaches_the_dockerfile() -> None:
    loaded = load_kit(FIXTURES / "claude", {"version": "2.1.300"})
    assert loaded.kit.install[1].argv[1] == "CLAUDE_VERSION=2.1.300"


def test_an_editor_buffer_is_checked_with_its_kits_files_as_saved(
    write_kit: WriteKit, tmp_path: Path
) -> None:
    from sandkit.kits.loader import load_text

    root = kit_with(write_kit, "FROM docker/sandbox-templates:shell\nCOPY gone.sh /x\n")
    buffer = WORKLOAD + "displayName: Unsaved\n"  # the buffer's text, not the file's
    with pytest.raises(KitError) as caught:
        load_text(buffer, str(root / "spec.yaml"))
    assert "COPY gone.sh: no such file in the kit folder" in errors_of(caught)[0]
    (root / "gone.sh").write_text("echo\n")
    assert load_text(buffer, str(root / "spec.yaml")).kit.display_name == "Unsaved"
    never_saved = load_text(buffer, str(tmp_path / "new" / "spec.yaml"))
    assert never_saved.kit.install == ()


def test_the_kits_dockerignore_leaves_files_out_as_docker_does(
    write_kit: WriteKit, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    recipe = (
        "FROM docker/sandbox-templates:shell\n"
        f"COPY --chown={_owner()} . {out}/\n"
        f"COPY --chown={_owner()} secret.env {out}/named/\n"
    )
    files = {
        ".dockerignore": "secret.env\n**/*.log\ncache\n!cache/keep.txt\n",
        "secret.env": "TOKEN=1\n",
        "tool.sh": "run\n",
        "logs/a.log": "",
        "cache/junk": "",
        "cache/keep.txt": "kept\n",
    }
    root = kit_with(write_kit, recipe, **files)
    with pytest.raises(KitError) as caught:  # named, but left out of the context
        load_kit(root)
    assert errors_of(caught) == [
        f"{root}/tool.dockerfile:3: COPY secret.env: no such file in the kit folder {root} (or "
        "its .dockerignore leaves it out); add it there or fix the path"
    ]
    (root / "tool.dockerfile").write_text(recipe.splitlines()[0] + "\n" + recipe.splitlines()[1])
    assert set(_replayed(root, out)) == {
        ".dockerignore",
        "cache/keep.txt",
        "spec.yaml",
        "tool.dockerfile",
        "tool.sh",
    }


def test_a_dockerignore_line_that_is_no_pattern_is_an_error_naming_it(
    write_kit: WriteKit,
) -> None:
    recipe = "FROM docker/sandbox-templates:shell\nCOPY . /opt/kit/\n"
    root = kit_with(write_kit, recipe, **{".dockerignore": "ok\nbad[z-a]\n"})
    with pytest.raises(KitError) as caught:
        load_kit(root)
    (error,) = errors_of(caught)
    assert error.startswith(f"{root}/.dockerignore:2: 'bad[z-a]' is not a pattern")


def test_a_wildcard_counts_the_files_it_matches_not_the_folder(
    write_kit: WriteKit, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    files = {f"tools/{i}.txt": "" for i in range(300)} | {"tools/run.sh": "run\n"}
    recipe = f"FROM docker/sandbox-templates:shell\nCOPY --chown={_owner()} tools/*.sh {out}/\n"
    assert _replayed(kit_with(write_kit, recipe, **files), out) == {"run.sh": ("run\n", 0o644)}


def test_a_copy_to_the_workdir_or_an_existing_folder_lands_inside_it(
    write_kit: WriteKit, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "existing").mkdir(parents=True)
    recipe = (
        "FROM docker/sandbox-templates:shell\n"
        f"WORKDIR {out}/app\n"
        f"COPY --chown={_owner()} package.json .\n"  # '.': the WORKDIR, a folder
        f"COPY --chown={_owner()} tool.sh {out}/existing\n"  # a folder in the guest
        f"COPY --chown={_owner()} tool.sh {out}/renamed.sh\n"  # no folder there: the name
    )
    root = kit_with(write_kit, recipe, **{"package.json": "{}\n", "tool.sh": "run\n"})
    assert _replayed(root, out) == {
        "app/package.json": ("{}\n", 0o644),
        "existing/tool.sh": ("run\n", 0o644),
        "renamed.sh": ("run\n", 0o644),
    }


def test_a_huge_kit_file_is_refused_before_it_is_read(write_kit: WriteKit) -> None:
    root = kit_with(write_kit, "FROM docker/sandbox-templates:shell\nCOPY . /opt/kit/\n")
    with (root / "huge.bin").open("wb") as f:  # sparse: 1 GiB on paper, nothing on disk
        f.truncate(1 << 30)
    with pytest.raises(KitError) as caught:
        load_kit(root)
    assert "COPY .: huge.bin is larger than 64 KiB" in errors_of(caught)[0]


def test_a_recipe_cannot_make_sandkit_list_or_read_without_bound(write_kit: WriteKit) -> None:
    many = "COPY " + " ".join(["d"] * 300) + " /x/\n"  # 300 sources in one short line
    root = kit_with(write_kit, f"FROM docker/sandbox-templates:shell\n{many}", **{"d/a": "a"})
    with pytest.raises(KitError) as caught:
        load_kit(root)
    assert "its COPY instructions name 300 sources, more than 256" in errors_of(caught)[0]
    files = {f"d{i}/f": "x" * (60 << 10) for i in range(80)}  # 80 × 60 KiB: over 4 MiB
    copies = "".join(f"COPY d{i} /x/{i}/\n" for i in range(80))
    root = kit_with(write_kit, f"FROM docker/sandbox-templates:shell\n{copies}", **files)
    with pytest.raises(KitError) as caught:
        load_kit(root)
    (error,) = errors_of(caught)  # said once, then nothing more is read
    assert "the recipe's COPYs come to more than 4 MiB" in error
