"""The `sandkit kit` verbs, run as a user runs them: the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from tests.conftest import BUILTIN, CORPUS, REPO, WriteKit
from tests.kitrepo import AGENT, make_repo

SANDKIT = shutil.which("sandkit", path=str(Path(sys.executable).parent)) or "sandkit"


def sandkit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SANDKIT, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_validate_corpus_and_builtins() -> None:
    kits = [str(p) for p in sorted(CORPUS.iterdir())] + ["shell", "claude", str(BUILTIN / "github")]
    done = sandkit("kit", "validate", *kits)
    # The aider kit's image is shell-docker: sandkit's variant with Docker Engine, valid.
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": valid ") == len(kits)
    assert "Traceback" not in done.stderr


def test_validate_reports_positions_and_fails(write_kit: WriteKit) -> None:
    bad = write_kit(
        'schemaVersion: "2"\nkind: mixin\nname: x\npermissions:\n  network:\n    alow: [a]\n'
    )
    done = sandkit("kit", "validate", str(bad), "shell")
    assert done.returncode == 1
    assert f"{bad}/spec.yaml:6:5: error: unknown key 'alow' (did you mean 'allow'?)" in done.stderr
    assert "shell: valid agent kit 'shell'" in done.stdout
    assert "Traceback" not in done.stderr


def test_validate_json(write_kit: WriteKit) -> None:
    bad = write_kit('schemaVersion: "2"\nkind: mixin\nname: X\n')
    done = sandkit("kit", "validate", "--json", str(bad), "shell")
    results = json.loads(done.stdout)
    assert done.returncode == 1
    assert [r["valid"] for r in results] == [False, True]
    issue = results[0]["issues"][0]
    assert (issue["line"], issue["column"], issue["severity"]) == (3, 7, "error")


@pytest.mark.parametrize(
    "args",
    [
        ["kit", "validate", "/nonexistent/kit"],
        ["kit", "inspect", "no-such-agent"],
        ["kit", "inspect", "--resolved", "shell", "--kit", "claude"],
        ["kit", "migrate", "/nonexistent"],
    ],
)
def test_bad_input_is_a_message_not_a_traceback(args: list[str]) -> None:
    done = sandkit(*args)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and done.stderr.strip()


def test_kit_without_resolved_is_a_usage_error() -> None:
    done = sandkit("kit", "inspect", "shell", "--kit", "github")
    assert done.returncode == 2 and "add --resolved" in done.stderr


def test_inspect_resolved_aider_with_deepseek() -> None:
    done = sandkit(
        "kit",
        "inspect",
        "--resolved",
        "--json",
        str(CORPUS / "v2-sandbox-aider"),
        "--kit",
        str(CORPUS / "v1-mixin-deepseek-creds"),
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    hosts = {r["pattern"] for r in data["network"]["allow"]}
    assert {"aider.chat", "api.github.com", "api.deepseek.com"} <= hosts
    assert [c["service"] for c in data["credentials"]] == [
        "anthropic",
        "gemini",
        "openai",
        "deepseek",
    ]
    assert [k["name"] for k in data["kits"]] == ["aider", "deepseek-creds"]


def test_inspect_resolved_shows_the_shape_and_image_chosen_and_why(write_kit: WriteKit) -> None:
    kit = write_kit(
        'schemaVersion: "2"\nkind: sandbox\nname: sized\nsandbox:\n'
        "  image: docker/sandbox-templates:claude-code\n  resources: {cpu: 1, memory: 768m}\n"
    )
    done = sandkit("kit", "inspect", "--resolved", "--json", str(kit))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["shape"] == {
        "cpus": 1,
        "memoryMiB": 768,
        "why": {
            "cpus": "kit 'sized' resources (1 CPU)",
            "memory": "kit 'sized' resources (768 MiB)",
        },
    }
    assert data["image"]["kind"] == "base"
    assert "'docker/sandbox-templates:claude-code' is an sbx template" in data["image"]["why"]
    shell = json.loads(sandkit("kit", "inspect", "--resolved", "--json", "shell").stdout)
    assert shell["shape"]["why"]["cpus"].startswith("default: this machine's")
    assert shell["shape"]["why"]["memory"] == "default: half this machine's memory, at most 8 GiB"


def test_validate_warns_on_an_unused_image(write_kit: WriteKit) -> None:
    kit = write_kit(
        'schemaVersion: "2"\nkind: sandbox\nname: own\nsandbox:\n  image: ghcr.io/me/own:3\n'
    )
    done = sandkit("kit", "validate", str(kit))
    assert done.returncode == 0, done.stderr
    assert (
        f"{kit}/spec.yaml:5:3: warning: sandkit builds its guest from Debian; this kit's image "
        "is not used ('ghcr.io/me/own:3')"
    ) in done.stderr
    resolved = json.loads(sandkit("kit", "inspect", "--resolved", "--json", str(kit)).stdout)
    assert resolved["image"]["kind"] == "unused"


def test_git_references_in_inspect_and_validate(tmp_path: Path) -> None:
    bare = make_repo(tmp_path, {"kits/a/spec.yaml": AGENT.format(name="a")})
    ref = f"git+file://{bare}#main:kits/a"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        [SANDKIT, "kit", "inspect", "--resolved", "--json", ref, "--kit", "github"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    (fetched,) = data["fetched"]
    assert fetched["reference"] == ref and fetched["url"] == f"file://{bare}"
    assert len(fetched["commit"]) == 40 and fetched["subdir"] == "kits/a"
    assert data["shape"]["memoryMiB"] == 640 and data["agentName"] == "a"
    bad = subprocess.run(
        [SANDKIT, "kit", "validate", f"git+file://{bare}#--upload-pack=x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "'--upload-pack=x' is not a branch, tag or commit name" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_inspect_yaml_is_yaml() -> None:
    done = sandkit("kit", "inspect", "--resolved", "shell")
    assert done.returncode == 0, done.stderr
    data = YAML(typ="safe").load(done.stdout)
    assert data["agentName"] == "shell" and data["agent"]["entrypoint"] == ["bash", "-l"]


def test_schema_validates_every_good_kit_and_rejects_a_bad_one(write_kit: WriteKit) -> None:
    done = sandkit("kit", "schema")
    schema = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    yaml = YAML(typ="safe")
    for spec in [*CORPUS.glob("*/spec.yaml"), *BUILTIN.glob("*/spec.yaml")]:
        errors = list(validator.iter_errors(yaml.load(spec.read_text())))
        assert not errors, f"{spec}: {errors[0].message}"
    bad = yaml.load('schemaVersion: "2"\nkind: mixin\nname: x\npermisions: {}\n')
    assert list(validator.iter_errors(bad))


def test_migrate_prints_valid_v2(tmp_path: Path) -> None:
    done = sandkit("kit", "migrate", str(CORPUS / "v1-mixin-deepseek-creds"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# migrated from schemaVersion 1")
    kit = tmp_path / "migrated"
    kit.mkdir()
    (kit / "spec.yaml").write_text(done.stdout)
    again = sandkit("kit", "validate", str(kit))
    assert again.returncode == 0 and again.stderr == ""


def test_help_teaches() -> None:
    done = sandkit("--help")
    assert done.returncode == 0 and "examples:" in done.stdout
    assert "--resolved" in sandkit("kit", "inspect", "--help").stdout


def test_kit_ls_table() -> None:
    done = sandkit("kit", "ls")
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "DESCRIPTION"]
    assert sorted(line.split()[0] for line in lines[1:]) == [
        "aider",
        "claude",
        "codex",
        "copilot",
        "docker",
        "gemini",
        "github",
        "node",
        "opencode",
        "python-dev",
        "qwen",
        "shell",
    ]


SPEC_DATA = REPO / "tests" / "data" / "kit-spec"


def test_migrate_of_a_v1_kit_with_pipe_mode_is_the_hand_written_v2() -> None:
    done = sandkit("kit", "migrate", str(SPEC_DATA / "v1-pipemode"))
    assert done.returncode == 0, done.stderr
    yaml = YAML(typ="safe")
    expected = yaml.load((SPEC_DATA / "v1-pipemode" / "expected-v2.yaml").read_text())
    assert yaml.load(done.stdout) == expected
    assert "entrypoint.pipeMode (append) has no v2 equivalent and was dropped" in done.stderr


NEEDS = 'schemaVersion: "3"\nkind: workload\ncapabilities:\n  - type: {type}\n'


def test_validate_tells_invalid_from_needing_what_sandkit_lacks(write_kit: WriteKit) -> None:
    # host-mount@1 is implemented: a kit with one is valid and runs.
    mount = 'schemaVersion: "3"\nkind: workload\ncapabilities:\n  - type: {type}\n    config: {{path: /cache}}\n'
    sessions = write_kit(mount.format(type="com.docker.sandbox/host-mount@1"), "sessions")
    alone = sandkit("kit", "validate", str(sessions))
    assert alone.returncode == 0, alone.stderr
    registry = write_kit(NEEDS.format(type="com.docker.sandbox/kit-registry@1"), "registry")
    kit_set = write_kit('schemaVersion: "3"\nkind: set\n', "bundle")
    done = sandkit("kit", "validate", str(sessions), str(registry), str(kit_set), "shell")
    assert done.returncode == 3, done.stderr
    assert f"{registry}: valid, but needs what sandkit does not implement" in done.stderr
    assert f"{sessions}: valid, but" not in done.stderr
    assert "sandkit does not do (pass each kit with --kit instead)" in done.stderr
    assert f"{kit_set}: valid, but needs what sandkit does not implement: kind: set" in (
        done.stderr
    )
    bad = write_kit('schemaVersion: "3"\nkind: mixin\nprovides: [deb/bash]\n', "bad")
    worse = sandkit("kit", "validate", "--json", str(registry), str(bad))
    assert worse.returncode == 1
    results = json.loads(worse.stdout)
    assert [r["valid"] for r in results] == [True, False]
    assert results[0]["unsupported"] == ["com.docker.sandbox/kit-registry@1"]
    assert "unsupported" not in results[1]


def test_ls_json_shows_the_shape(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "SANDKIT_POOL_SIZE": "0"}

    def sk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SANDKIT, *args], capture_output=True, text=True, env=env, timeout=60)

    made = sk("create", "shell", "--name", "shaped", "--cpus", "1", "--memory", "384m")
    assert made.returncode == 0, made.stderr
    (row,) = json.loads(sk("ls", "--json").stdout)
    assert (row["name"], row["cpus"], row["memory_mib"]) == ("shaped", 1, 384)
