"""The one request builder: the CLI, the editor and pool fill get the same checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandkit.sandbox.request import SandboxRequest, build, kit_ref, parse_memory, parse_resolve
from sandkit.sandbox.store import SandboxError


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
    config = build(
        SandboxRequest(agent="shell", kits=["./k"], workspace=tmp_path, kit_base=tmp_path)
    )
    assert config.name == f"shell-{tmp_path.name}" and config.kits == [str(tmp_path / "k")]
    assert build(SandboxRequest(name="pool-x"), pool_member=True).name == "pool-x"
