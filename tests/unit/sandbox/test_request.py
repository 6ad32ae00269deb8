"""The one request builder: the CLI, the editor and pool fill get the same checks."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sandkit.sandbox.request import (
    SandboxRequest,
    build,
    kit_ref,
    parse_disk,
    parse_memory,
    parse_resolve,
)
from sandkit.sandbox.store import SandboxError
from sandkit.vm.hostcheck import host_memory_mib
from tests.kitrepo import AGENT, git, make_repo


def test_kit_references_paths_become_absolute_names_stay(tmp_path: Path) -> None:
    assert kit_ref("claude") == "claude"
    assert kit_ref("./kits/x") == str((Path.cwd() / "kits/x").resolve())
    assert kit_ref("kits/x", tmp_path) == str(tmp_path / "kits" / "x")
    assert kit_ref("kit.zip", tmp_path) == str(tmp_path / "kit.zip")
    (tmp_path / "mine").mkdir()
    assert kit_ref("mine", tmp_path) == str(tmp_path / "mine")  # exists: a path


@pytest.mark.parametrize(("value", "mib"), [("1g", 1024), ("512m", 512), (768, 768)])
def test_memory(value: str | int, mib: int) -> None:
    assert parse_memory(value) == mib


def test_bad_memory_names_the_option() -> None:
    with pytest.raises(SandboxError, match="--memory 'lots' is not a size like 1g or 512m"):
        parse_memory("lots")


@pytest.mark.parametrize(
    ("items", "message"),
    [(["api.test"], "is not HOST=IP"), (["api.test=nope"], "'nope' is not an IP address")],
)
def test_bad_pins(items: list[str], message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        parse_resolve(items)


def test_pins_from_flags_and_from_settings_agree() -> None:
    assert parse_resolve(["a.test=127.0.0.1"]) == parse_resolve({"a.test": "127.0.0.1"})


def test_a_request_is_checked_before_anything_is_made(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="are the warm pool's"):
        build(SandboxRequest(name="pool-x", workspace=tmp_path))
    with pytest.raises(SandboxError, match="at least 1 CPU and 256m"):
        build(SandboxRequest(memory="128m", workspace=tmp_path))
    with pytest.raises(SandboxError, match="is not a folder"):
        build(SandboxRequest(workspace=tmp_path / "missing"))
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "spec.yaml").write_text('schemaVersion: "2"\nkind: mixin\nname: k\n')
    config = build(
        SandboxRequest(agent="shell", kits=["./k"], workspace=tmp_path, kit_base=tmp_path)
    )
    assert config.name == f"shell-{tmp_path.name}" and config.kits == [str(tmp_path / "k")]
    assert build(SandboxRequest(name="pool-x"), pool_member=True).name == "pool-x"


HOST_CPUS = len(os.sched_getaffinity(0))
HOST_MIB = host_memory_mib()


def agent_kit(
    root: Path, resources: str = "", image: str = "docker/sandbox-templates:shell"
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(
        'schemaVersion: "2"\nkind: sandbox\nname: sized\nsandbox:\n'
        f"  image: {image}\n  entrypoint: [bash]\n{resources}"
    )
    return root


def test_without_flags_the_shape_scales_to_the_host(tmp_path: Path) -> None:
    config = build(SandboxRequest(agent="shell", workspace=tmp_path))
    assert config.cpus == max(HOST_CPUS - 1, 1)
    assert HOST_MIB is not None
    assert config.memory_mib == min(HOST_MIB // 2, 8192)


def test_a_kits_resources_set_the_shape_unless_flags_are_given(tmp_path: Path) -> None:
    kit = agent_kit(tmp_path / "kit", "  resources:\n    cpu: 1\n    memory: 512m\n")
    config = build(SandboxRequest(agent=str(kit)))
    assert (config.cpus, config.memory_mib) == (1, 512)
    flagged = build(SandboxRequest(agent=str(kit), cpus=1, memory="384m"))
    assert (flagged.cpus, flagged.memory_mib) == (1, 384)
    half = build(SandboxRequest(agent=str(kit), memory="768m"))  # one flag: the kit's CPUs
    assert (half.cpus, half.memory_mib) == (1, 768)


def test_a_kit_asking_for_more_than_the_host_gets_the_host_and_is_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = agent_kit(tmp_path / "kit", f"  resources:\n    cpu: {HOST_CPUS + 3}\n")
    config = build(SandboxRequest(agent=str(kit), memory="512m"))
    assert config.cpus == HOST_CPUS
    assert f"kit 'sized' asks for {HOST_CPUS + 3} CPUs" in capsys.readouterr().err


def test_an_unused_image_is_said_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = agent_kit(tmp_path / "kit", image="ghcr.io/someone/agent:2")
    build(SandboxRequest(agent=str(kit), cpus=1, memory="512m"))
    err = capsys.readouterr().err
    assert f"{kit}/spec.yaml:5:3: warning: sandkit builds its guest from Debian; " in err
    assert "this kit's image is not used ('ghcr.io/someone/agent:2')" in err


def test_an_image_that_needs_docker_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = agent_kit(tmp_path / "kit", image="docker/sandbox-templates:shell-docker")
    build(SandboxRequest(agent=str(kit), cpus=1, memory="512m"))
    assert "warning" not in capsys.readouterr().err


def test_git_references_stay_references() -> None:
    ref = "git+https://example.test/kits.git#main:claude"
    assert kit_ref(ref) == ref


@pytest.mark.parametrize(
    ("value", "mib"), [(None, 20 << 10), ("20g", 20 << 10), ("40G", 40 << 10), ("8192m", 8192)]
)
def test_disk_sizes(value: str | None, mib: int) -> None:
    assert parse_disk(value) == mib


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("big", "--disk 'big' is not a size like 20g or 8192m"),
        ("1g", "--disk '1g': the guest's disk is between 4g (its image) and 2t; give e.g."),
        ("30t", "between 4g"),
    ],
)
def test_bad_disk_sizes_say_what_to_give(value: str, message: str) -> None:
    with pytest.raises(SandboxError, match=re.escape(message)):
        parse_disk(value)


def test_built_in_kits_are_resolved_again_only_when_their_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    builtin = tmp_path / "builtin"
    monkeypatch.setenv("SANDKIT_KITS_DIR", str(builtin))
    unused = "ghcr.io/someone/agent:2"
    agent_kit(builtin / "sized", "  resources:\n    cpu: 1\n    memory: 512m\n", unused)
    assert build(SandboxRequest(agent="sized")).memory_mib == 512
    (memo,) = (tmp_path / "cache" / "sandkit" / "resolved").iterdir()
    assert "this kit's image is not used" in capsys.readouterr().err
    data = json.loads(memo.read_text())
    memo.write_text(json.dumps({**data, "memory_mib": 640}))
    assert build(SandboxRequest(agent="sized")).memory_mib == 640  # the memo's answer
    assert "this kit's image is not used" in capsys.readouterr().err  # said at every start
    agent_kit(builtin / "sized", "  resources:\n    cpu: 1\n    memory: 1g\n", unused)
    assert build(SandboxRequest(agent="sized")).memory_mib == 1024  # changed: resolved
    for memo in (tmp_path / "cache" / "sandkit" / "resolved").iterdir():
        memo.write_text("{")
    assert build(SandboxRequest(agent="sized")).memory_mib == 1024  # unreadable: resolved
    kit = agent_kit(tmp_path / "kit", "  resources:\n    cpu: 1\n    memory: 384m\n")
    count = len(list(memo.parent.iterdir()))
    assert build(SandboxRequest(agent=str(kit))).memory_mib == 384
    assert len(list(memo.parent.iterdir())) == count  # a kit path is never remembered


def test_the_disk_size_reaches_the_config_checked(tmp_path: Path) -> None:
    assert build(SandboxRequest(workspace=tmp_path)).disk_mib == 20 << 10
    assert build(SandboxRequest(workspace=tmp_path, disk="64g")).disk_mib == 64 << 10
    with pytest.raises(SandboxError, match="--disk '2g': the guest's disk is between"):
        build(SandboxRequest(workspace=tmp_path, disk="2g"))


def test_a_git_kit_is_recorded_by_the_commit_it_was_fetched_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bare = make_repo(tmp_path, {"kits/a/spec.yaml": AGENT.format(name="a")})
    commit = git("rev-parse", "main", cwd=bare).strip()
    config = build(SandboxRequest(agent=f"git+file://{bare}#main:kits/a"))
    assert config.agent == f"git+file://{bare}#{commit}:kits/a"
    assert (config.cpus, config.memory_mib) == (1, 640)  # the kit's resources
    assert config.name == "sandbox-a"  # named after the kit folder
