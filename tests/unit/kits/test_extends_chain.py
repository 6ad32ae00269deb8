"""An ``extends`` chain names each kit once: a parent declaring the extending kit's own
name, or a chain leading back to a file already in it, fails naming both files."""

from __future__ import annotations

import pytest

from sandkit.kits.issues import KitError
from sandkit.kits.resolution import load_ref
from tests.conftest import WriteKit

BASE = """
schemaVersion: "2"
kind: sandbox
name: {name}
sandbox:
  image: docker/sandbox-templates:shell
  entrypoint: [bash]
"""
CHILD = """
schemaVersion: "2"
kind: sandbox
name: {name}
extends: {parent}
"""


def test_a_parent_with_the_same_name_is_refused_naming_both_files(write_kit: WriteKit) -> None:
    base = write_kit(BASE.format(name="mine"), "base")
    child = write_kit(CHILD.format(name="mine", parent="../base"), "child")
    with pytest.raises(KitError) as caught:
        load_ref(str(child))
    (issue,) = caught.value.issues
    assert str(child / "spec.yaml") in issue.message
    assert str(base / "spec.yaml") in issue.message
    assert "'mine' is declared both by" in issue.message


def test_a_cycle_through_paths_is_refused_naming_both_files(write_kit: WriteKit) -> None:
    a = write_kit(CHILD.format(name="a", parent="../b"), "a")
    b = write_kit(CHILD.format(name="b", parent="../a"), "b")
    with pytest.raises(KitError) as caught:
        load_ref(str(a))
    (issue,) = caught.value.issues
    assert "a cycle" in issue.message
    assert str(a / "spec.yaml") in issue.message and str(b / "spec.yaml") in issue.message


def test_a_kit_extending_a_builtin_of_its_own_name_is_refused(write_kit: WriteKit) -> None:
    child = write_kit(CHILD.format(name="claude", parent="claude"), "child")
    with pytest.raises(KitError, match="a kit chain names each kit once"):
        load_ref(str(child))


def test_a_plain_chain_still_extends(write_kit: WriteKit) -> None:
    write_kit(BASE.format(name="base"), "base")
    child = write_kit(CHILD.format(name="child", parent="../base"), "child")
    kit = load_ref(str(child)).kit
    assert kit.agent is not None and kit.agent.entrypoint == ("bash",)
