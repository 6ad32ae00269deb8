"""Spec facts where published kits and sbx's docs disagree with a strict reading (issue 18):
each kit here is written for the test from the spec text (SPEC-v2, SPEC-v3 and its
capability pages), not copied from a published kit."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from sandkit.kits import KitError, compose, load_kit
from sandkit.kits.context import profile_paths
from sandkit.kits.issues import Severity
from sandkit.kits.migrate import migrate
from sandkit.kits.model import Kit
from sandkit.kits.sizes import parse_size
from tests.conftest import REPO, WriteKit

SPEC_DATA = REPO / "tests" / "data" / "kit-spec"
V3_WORKLOAD = 'schemaVersion: "3"\nkind: workload\ncapabilities:\n'
V3_MIXIN = 'schemaVersion: "3"\nkind: mixin\ncapabilities:\n'


def errors_of(exc: pytest.ExceptionInfo[KitError]) -> list[str]:
    return [
        f"{i.span.line + 1}:{i.span.column + 1}: {i.message}"
        for i in exc.value.issues
        if i.severity is Severity.ERROR
    ]


def load_errors(write_kit: WriteKit, text: str, **files: str) -> list[str]:
    with pytest.raises(KitError) as caught:
        load_kit(write_kit(text, files=files))
    return errors_of(caught)


# ---- v1 entrypoint.pipeMode ------------------------------------------------------------

PIPE = SPEC_DATA / "v1-pipemode"


def test_v1_pipe_mode_is_a_string(write_kit: WriteKit) -> None:
    kit = load_kit(PIPE).kit
    assert kit.agent is not None and kit.agent.entrypoint == ("piper",)
    bad = (PIPE / "spec.yaml").read_text().replace("pipeMode: append", "pipeMode: {a: 1}")
    assert load_errors(write_kit, bad) == ["13:5: expected a string, got a mapping"]


def test_migrate_drops_pipe_mode_and_changes_nothing_else(write_kit: WriteKit) -> None:
    doc, notes = migrate(load_kit(PIPE))
    expected = YAML(typ="safe", pure=True).load((PIPE / "expected-v2.yaml").read_text())
    assert doc == expected
    assert notes == ["entrypoint.pipeMode (append) has no v2 equivalent and was dropped"]
    without = (PIPE / "spec.yaml").read_text().replace("    pipeMode: append\n", "")
    plain, plain_notes = migrate(load_kit(write_kit(without)))
    assert plain == doc and plain_notes == []


# ---- proxy variables -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "block"),
    [
        ("1", "kind: mixin\nname: demo\n"),
        ("2", "kind: mixin\nname: demo\n"),
    ],
)
def test_proxy_variables_are_a_warning_and_sandkit_keeps_its_own(
    write_kit: WriteKit, version: str, block: str
) -> None:
    text = (
        f'schemaVersion: "{version}"\n{block}environment:\n  variables:\n'
        '    HTTP_PROXY: ""\n    https_proxy: ""\n    All_Proxy: ""\n    NO_PROXY: x\n'
        "    KEEP: kept\n"
    )
    loaded = load_kit(write_kit(text))
    assert loaded.kit.environment == {"KEEP": "kept"}
    warned = [(w.span.line + 1, w.code) for w in loaded.warnings if w.code == "proxy-env"]
    assert warned == [(6, "proxy-env"), (7, "proxy-env"), (8, "proxy-env"), (9, "proxy-env")]
    first = next(w for w in loaded.warnings if w.code == "proxy-env")
    assert first.message.startswith("'HTTP_PROXY' is ignored: sandkit keeps its own proxy")


def test_a_v3_arg_exported_as_a_proxy_variable_is_dropped_with_a_warning(
    write_kit: WriteKit,
) -> None:
    text = 'schemaVersion: "3"\nkind: mixin\nargs:\n  p: {default: "", env: HTTPS_PROXY}\n'
    loaded = load_kit(write_kit(text))
    assert loaded.kit.environment == {}
    assert [(w.span.line + 1, w.code) for w in loaded.warnings] == [(4, "proxy-env")]


# ---- OAuth passthrough -----------------------------------------------------------------

OAUTH_V2 = """\
schemaVersion: "2"
kind: mixin
name: demo
credentials:
  - service: corp
    oauth:
      tokenEndpoint: {host: login.corp.example, path: /token}
      sentinels: {}
      skipIfEnv: [CORP_TOKEN]
      passthrough: true
"""


def test_oauth_passthrough_needs_no_sentinels(write_kit: WriteKit) -> None:
    (cred,) = load_kit(write_kit(OAUTH_V2)).kit.credentials
    assert cred.oauth is not None and cred.oauth.passthrough
    assert (cred.oauth.access_sentinel, cred.oauth.refresh_sentinel) == (None, None)


def test_oauth_without_passthrough_still_needs_both_sentinels(write_kit: WriteKit) -> None:
    text = OAUTH_V2.replace("      passthrough: true\n", "").replace(
        "sentinels: {}", "sentinels: {accessToken: a}"
    )
    assert load_errors(write_kit, text) == [
        "6:5: oauth needs 'sentinels' with 'accessToken' and 'refreshToken' "
        "(unless 'passthrough: true')"
    ]


def test_v1_and_v3_oauth_passthrough_without_sentinels(write_kit: WriteKit) -> None:
    v1 = (
        'schemaVersion: "1"\nkind: mixin\nname: demo\noauth:\n  service: corp\n'
        "  tokenEndpoint: {host: login.corp.example, path: /token}\n"
        "  sentinels: {}\n  skipIfEnv: [CORP_TOKEN]\n  passthroughResponse: true\n"
    )
    (cred,) = load_kit(write_kit(v1, "v1")).kit.credentials
    assert cred.oauth is not None and cred.oauth.passthrough
    v3 = (
        V3_MIXIN + "  - type: com.docker.sandbox/credential@1\n    config:\n"
        "      service: corp\n      oauth:\n"
        "        tokenEndpoint: {host: login.corp.example, path: /token}\n"
        "        sentinels: {}\n        skipIfEnv: [CORP_TOKEN]\n        passthrough: true\n"
    )
    (cred,) = load_kit(write_kit(v3, "v3")).kit.credentials
    assert cred.oauth is not None and cred.oauth.access_sentinel is None


# ---- companion files -------------------------------------------------------------------


def test_a_missing_content_file_names_the_file_and_the_folder(write_kit: WriteKit) -> None:
    text = V3_WORKLOAD + (
        "  - type: com.docker.sandbox/agent-context@1\n"
        "    config: {filename: AGENTS.md, contentFile: ./agent-context.md}\n"
    )
    root = write_kit(text, "ctx")
    with pytest.raises(KitError) as caught:
        load_kit(root)
    assert errors_of(caught) == [
        f"5:48: contentFile './agent-context.md' was not found in the kit folder {root}: "
        "add the file there, or write the text inline as 'content'"
    ]
    (root / "agent-context.md").write_text("hello")
    assert load_kit(root).kit.agent_context[0].content == "hello"


def test_companion_files_sandkit_does_not_use_are_not_errors(write_kit: WriteKit) -> None:
    # The recipe is for building an image (sandkit builds its own guest); a context body in
    # a group sandkit skips is never read.
    text = (
        'schemaVersion: "3"\nkind: workload\ndockerfile: ./tool.dockerfile\ncapabilities:\n'
        "  - group:\n      optional: true\n      capabilities:\n"
        "        - type: com.docker.sandbox/agent-context@1\n"
        "          config: {filename: AGENTS.md, contentFile: ./missing.md}\n"
        "        - type: com.docker.sandbox/usb-device@1\n"
    )
    root = write_kit(text, "recipe")
    loaded = load_kit(root)
    (recipe,) = [w for w in loaded.warnings if w.span.line + 1 == 3]
    assert f"'./tool.dockerfile' is not in the kit folder {root}" in recipe.message
    assert loaded.kit.agent_context == ()


# ---- capability groups and declarations ---------------------------------------------------

GROUP = """\
  - group:
      name: Shared cache
      description: A cache volume and the hook that fills it
      optional: true
      capabilities:
"""


def test_a_group_may_carry_a_description(write_kit: WriteKit) -> None:
    text = (
        V3_WORKLOAD
        + GROUP
        + (
            "        - type: com.docker.sandbox/volume@1\n          config: {path: /cache}\n"
            "        - type: com.docker.sandbox/lifecycle@1\n"
            "          config: {startup: [{command: [warm]}]}\n"
        )
    )
    kit = load_kit(write_kit(text)).kit
    assert [v.path for v in kit.volumes] == ["/cache"] and kit.startup[0].argv == ("warm",)


@pytest.mark.parametrize("value", ["true", "false"])
def test_group_members_may_not_state_optional(write_kit: WriteKit, value: str) -> None:
    text = (
        V3_WORKLOAD
        + GROUP
        + (
            f"        - type: com.docker.sandbox/volume@1\n          optional: {value}\n"
            "          config: {path: /cache}\n"
        )
    )
    assert load_errors(write_kit, text) == [
        "10:11: a group member may not state 'optional' (even false): the group's own "
        "'optional' decides for all its members"
    ]


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ("        []\n", "8:21: must not be empty"),
        (
            "        - group: {capabilities: [{type: com.docker.sandbox/sbx@1}]}\n",
            "9:11: groups do not nest: list the capabilities here",
        ),
    ],
)
def test_group_grammar(write_kit: WriteKit, members: str, expected: str) -> None:
    text = V3_WORKLOAD + GROUP.replace("      capabilities:\n", "      capabilities:\n" + members)
    text = text.replace("capabilities:\n        []", "capabilities: []")
    assert load_errors(write_kit, text) == [expected]


def test_every_declaration_validates_before_selection(write_kit: WriteKit) -> None:
    # An optional entry, and a member of a group sandkit skips (it cannot provide
    # usb-device@1), are validated all the same.
    text = V3_WORKLOAD + (
        "  - type: com.docker.sandbox/port@1\n    optional: true\n    config: {container: 0}\n"
        + GROUP
        + "        - type: com.docker.sandbox/volume@1\n          config: {path: cache}\n"
        "        - type: com.docker.sandbox/usb-device@1\n"
    )
    assert load_errors(write_kit, text) == [
        "6:25: must be at least 1, got the number 0",
        "13:26: path 'cache' must be absolute (start with '/')",
    ]


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        (
            "com.docker.sandbox/volume@0",
            "capability type 'com.docker.sandbox/volume@0': a type's version is @1 or higher",
        ),
        (
            "com.docker.sandbox/volume@01",
            "capability type 'com.docker.sandbox/volume@01': a type's version is @1 or higher",
        ),
        (
            "com.docker/sandbox/volume@1",
            "capability type 'com.docker/sandbox/volume@1' must look like "
            "'com.docker.sandbox/NAME@N'",
        ),
    ],
)
def test_a_type_version_is_one_or_higher(write_kit: WriteKit, type_: str, expected: str) -> None:
    text = V3_MIXIN + f"  - type: {type_}\n    optional: true\n"
    assert load_errors(write_kit, text) == [f"4:5: {expected}"]


def test_arity_holds_per_block(write_kit: WriteKit) -> None:
    text = V3_WORKLOAD + (
        "  - type: com.docker.sandbox/network-policy@1\n"
        "  - type: com.docker.sandbox/network-policy@2\n"
        "  - type: com.docker.sandbox/volume@1\n    config: {path: /a}\n"
        "  - type: com.docker.sandbox/volume@1\n    config: {path: /a/}\n"
        "  - type: com.docker.sandbox/long-running@1\n    optional: true\n"
        "    config: {on: true}\n"
        "  - type: example.com/thing@1\n    optional: true\n"
        "  - type: example.com/thing@1\n    optional: true\n"
    )
    assert sorted(load_errors(write_kit, text), key=lambda e: int(e.split(":")[0])) == [
        "5:11: 'com.docker.sandbox/network-policy@2' and "
        "'com.docker.sandbox/network-policy@1' are exclusive (first at capabilities[0]): "
        "state one of them",
        "9:5: volume '/a' is declared twice in one block (first at capabilities[2]); keep one",
        "12:5: 'com.docker.sandbox/long-running@1' takes no config",
        "15:11: exact duplicate of capabilities[5]; keep one",
    ]


def test_a_group_is_its_own_block_and_its_lifecycle_joins_the_kits(write_kit: WriteKit) -> None:
    text = V3_WORKLOAD + (
        "  - type: com.docker.sandbox/lifecycle@1\n"
        "    config: {install: [{command: one}], interactive: [--tty]}\n"
        + GROUP.replace("optional: true", "optional: false")
        + "        - type: com.docker.sandbox/lifecycle@1\n"
        "          config: {install: [{command: two}]}\n"
    )
    kit = load_kit(write_kit(text, "ok")).kit
    assert [c.argv[2] for c in kit.install] == ["one", "two"]
    twice = text.replace("{command: two}]}", "{command: two}], interactive: [-i]}")
    assert load_errors(write_kit, twice) == [
        "12:47: 'interactive' is declared twice (first at capabilities[0].config.interactive); "
        "it replaces the launch arguments, so keep one"
    ]


# A well-known type sandkit does not implement (none today: host-mount@1 was the last),
# as the engine treats one: the mechanism stays, tested on a type marked so here.
LACKING = "a host folder shared into the sandbox; sandkit checks its config, but shares no host folder besides the workspace yet"


@pytest.fixture
def host_mount_lacking(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandkit.kits import spec_v3

    monkeypatch.setitem(spec_v3.NOT_IMPLEMENTED, ("host-mount", 1), LACKING)


def test_an_optional_group_sandkit_cannot_provide_is_skipped_whole(
    write_kit: WriteKit, host_mount_lacking: None
) -> None:
    text = (
        V3_WORKLOAD
        + GROUP
        + (
            "        - type: com.docker.sandbox/volume@1\n          config: {path: /cache}\n"
            "        - type: com.docker.sandbox/host-mount@1\n          config: {path: /x}\n"
        )
    )
    loaded = load_kit(write_kit(text))
    assert loaded.kit.volumes == ()
    (skip,) = [w for w in loaded.warnings if w.code == "unsupported-capability"]
    assert skip.message == (
        "skipped optional capability 'com.docker.sandbox/host-mount@1': not implemented in "
        "sandkit yet (a host folder shared into the sandbox; sandkit checks its config, but "
        "shares no host folder besides the workspace yet) (so group 'Shared cache' is "
        "skipped whole)"
    )
    required = text.replace("optional: true", "optional: false")
    assert load_errors(write_kit, required) == [
        "11:17: capability 'com.docker.sandbox/host-mount@1' is not implemented in sandkit "
        "yet (a host folder shared into the sandbox; sandkit checks its config, but shares "
        "no host folder besides the workspace yet); mark group 'Shared cache' "
        "'optional: true' to run without it"
    ]


@pytest.mark.parametrize(
    ("type_", "code"),
    [
        ("com.docker.sandbox/host-mount@1", "not-implemented"),
        ("com.docker.sandbox/kit-registry@1", "unsupported-capability"),
        ("com.example.tools/thing@1", "unsupported-capability"),
    ],
)
def test_what_sandkit_lacks_is_named_by_type(
    write_kit: WriteKit, type_: str, code: str, host_mount_lacking: None
) -> None:
    with pytest.raises(KitError) as caught:
        config = "    config: {path: /x}\n" if "host-mount" in type_ else ""
        load_kit(write_kit(V3_WORKLOAD + f"  - type: {type_}\n" + config))
    (issue,) = caught.value.issues
    assert (issue.code, issue.subject, issue.span.line + 1) == (code, type_, 4)


# ---- volume@1 ----------------------------------------------------------------------------


def test_sizes_are_exact_bytes() -> None:
    assert parse_size("1g") == parse_size("1024m") == parse_size("1gib") == 1 << 30
    assert parse_size("1.5g") == 3 << 29
    assert parse_size("0.5k") == 512 and parse_size("2GiB") == 2 << 30
    assert parse_size("9007199254740993") == 9007199254740993  # beyond a float's precision
    with pytest.raises(ValueError, match="not a whole number of bytes"):
        parse_size("0.5")


def test_an_explicitly_empty_size_or_mode_is_unspecified(write_kit: WriteKit) -> None:
    text = V3_MIXIN + (
        '  - type: com.docker.sandbox/volume@1\n    config: {path: /data, size: "", mode: ""}\n'
    )
    (volume,) = load_kit(write_kit(text)).kit.volumes
    assert (volume.size_bytes, volume.mode, volume.tmpfs) == (None, None, False)


def volume_kit(write_kit: WriteKit, name: str, config: str, kind: str = "mixin") -> Kit:
    head = V3_WORKLOAD if kind == "workload" else V3_MIXIN
    text = head + f"  - type: com.docker.sandbox/volume@1\n    config: {{path: /data{config}}}\n"
    return load_kit(write_kit(text, name)).kit


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (", size: 1g", ", size: 1024m"),
        (", size: 1g", ", size: 1gib"),
        (", mode: '755'", ", mode: '0755'"),
        ("", ", size: ''"),
        (", tmpfs: false", ""),
    ],
)
def test_matching_volume_requests_merge(write_kit: WriteKit, first: str, second: str) -> None:
    agent = volume_kit(write_kit, "agent", first, "workload")
    mixin = volume_kit(write_kit, "mixin", second)
    (volume,) = compose(agent, [mixin]).volumes
    assert volume.path == "/data"


@pytest.mark.parametrize(
    ("first", "second", "shown"),
    [
        (", size: 1g", ", size: 2g", "size 2147483648 bytes"),
        (", size: 1g", "", "size unspecified"),
        (", mode: '0755'", ", mode: '0700'", "mode 0700"),
        ("", ", mode: '0755'", "mode 0755"),
        ("", ", tmpfs: true", "tmpfs"),
        (", size: 1g", ", size: 1073741825", "size 1073741825 bytes"),
    ],
)
def test_different_volume_requests_fail_composition(
    write_kit: WriteKit, first: str, second: str, shown: str
) -> None:
    agent = volume_kit(write_kit, "agent", first, "workload")
    mixin = volume_kit(write_kit, "mixin", second)
    with pytest.raises(KitError) as caught:
        compose(agent, [mixin])
    (issue,) = caught.value.issues
    assert issue.file == mixin.file
    assert issue.span.line + 1 == 5
    assert "volume '/data' is requested as" in issue.message and shown in issue.message
    assert "requests for one path must match exactly" in issue.message


# ---- agent-context@1 and ${{ kit.env.NAME }} ----------------------------------------------

GEMINI = V3_WORKLOAD + (
    "  - type: com.docker.sandbox/agent-context@1\n"
    "    config:\n      filename: GEMINI.md\n"
    '      directory: "${{ kit.env.HOME }}/.gemini"\n      content: Use the tools.\n'
)


def test_an_explicit_profile_goes_where_the_kit_says(write_kit: WriteKit) -> None:
    kit = load_kit(write_kit(GEMINI, "gemini")).kit
    sandbox = compose(kit, [])
    assert profile_paths(sandbox, "/work/project") == ["/home/agent/.gemini/GEMINI.md"]
    assert sandbox.agent.context_filename is None  # no legacy profile beside the workspace


def test_a_legacy_profile_goes_beside_the_workspace(write_kit: WriteKit) -> None:
    text = GEMINI.replace('      directory: "${{ kit.env.HOME }}/.gemini"\n', "")
    sandbox = compose(load_kit(write_kit(text, "legacy")).kit, [])
    assert profile_paths(sandbox, "/work/project") == ["/work/GEMINI.md"]
    assert profile_paths(sandbox, None) == ["/home/agent/GEMINI.md"]


def test_an_explicit_profile_wins_over_the_legacy_one_in_any_order(write_kit: WriteKit) -> None:
    legacy = GEMINI.replace('      directory: "${{ kit.env.HOME }}/.gemini"\n', "")
    workload = load_kit(write_kit(legacy, "legacy")).kit
    profile = V3_MIXIN + (
        "  - type: com.docker.sandbox/agent-context@1\n"
        "    config: {filename: AGENTS.md, directory: /home/agent/.codex}\n"
    )
    mixin = load_kit(write_kit(profile, "codex-profile")).kit
    assert profile_paths(compose(workload, [mixin]), "/w/p") == ["/home/agent/.codex/AGENTS.md"]


def test_a_mixin_names_a_profile_only_with_its_directory(write_kit: WriteKit) -> None:
    text = V3_MIXIN + (
        "  - type: com.docker.sandbox/agent-context@1\n    config: {filename: AGENTS.md}\n"
    )
    assert load_errors(write_kit, text) == [
        "5:14: 'filename' without 'directory' names the workload's profile; a mixin gives "
        "both (an explicit profile) or neither (a body the profile indexes)"
    ]


def test_kit_env_is_expanded_in_config_strings_only(write_kit: WriteKit) -> None:
    text = (
        'schemaVersion: "3"\nkind: workload\n'
        'description: "home is ${{ kit.env.HOME }}"\n'
        "args:\n  region: {default: eu, env: REGION}\n"
        "capabilities:\n  - type: com.docker.sandbox/lifecycle@1\n    config:\n"
        "      files:\n"
        '        - path: "${{ kit.env.HOME }}/.config/tool.json"\n'
        '          content: "${{kit.env.REGION}} ${{ kit.env.WORKSPACE_DIR }}"\n'
    )
    root = write_kit(text)
    kit = load_kit(root).kit
    assert kit.description == "home is ${{ kit.env.HOME }}"  # display metadata: literal
    (setup,) = kit.files
    assert setup.path == "/home/agent/.config/tool.json"
    assert setup.content == "eu ${{ kit.env.WORKSPACE_DIR }}"  # known only at create
    runtime = {"WORKSPACE_DIR": "/w/p", "HOME": "/root"}
    (setup,) = load_kit(root, {"region": "us"}, env=runtime).kit.files
    assert (setup.path, setup.content) == ("/root/.config/tool.json", "us /w/p")


def test_kit_env_refuses_missing_names_and_templates_in_values(write_kit: WriteKit) -> None:
    text = V3_MIXIN + (
        "  - type: com.docker.sandbox/lifecycle@1\n    config:\n"
        '      files: [{path: /etc/x, content: "${{ kit.env.NOPE }}"}]\n'
    )
    (error,) = load_errors(write_kit, text)
    assert error.startswith(
        "6:39: '${{ kit.env.NOPE }}' names variable NOPE, which the sandbox's environment "
        "does not have"
    )
    sneaky = (
        'schemaVersion: "3"\nkind: mixin\nargs:\n  x: {default: "${{ kit.env.HOME }}"}\n'
        "capabilities:\n  - type: com.docker.sandbox/lifecycle@1\n    config:\n"
        '      files: [{path: /etc/x, content: "${{ kit.args.x }}"}]\n'
    )
    assert load_errors(write_kit, sneaky) == [
        "8:39: the value of arg 'x' contains '${{': inserted values are not templates"
    ]


def test_every_distinct_explicit_profile_is_written_once(write_kit: WriteKit) -> None:
    workload = load_kit(write_kit(GEMINI, "gemini")).kit
    same = load_kit(write_kit(GEMINI.replace("kind: workload", "kind: mixin"), "again")).kit
    codex = V3_MIXIN + (
        "  - type: com.docker.sandbox/agent-context@1\n"
        "    config: {filename: AGENTS.md, directory: /home/agent/.codex}\n"
    )
    other = load_kit(write_kit(codex, "codex")).kit
    assert profile_paths(compose(workload, [same, other]), None) == [
        "/home/agent/.gemini/GEMINI.md",
        "/home/agent/.codex/AGENTS.md",
    ]
