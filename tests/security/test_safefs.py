"""The checked file layer's judgements, on real trees: which names are plain relative paths,
what a mode from the sandbox becomes on the host, and where a link would really lead,
following the links already in the tree the way the kernel would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandkit.sync.safefs import MAX_LINK_HOPS, SafeTree, UnsafePath, clean_mode, split


@pytest.mark.parametrize(
    ("rel", "parts"),
    [("a", ["a"]), ("a/b/c", ["a", "b", "c"]), ("..a/b..", ["..a", "b.."]), (".x", [".x"])],
)
def test_plain_relative_paths_split_into_their_names(rel: str, parts: list[str]) -> None:
    assert split(rel) == parts


@pytest.mark.parametrize(
    "rel", ["", "/a", "a/", "a//b", ".", "./a", "a/.", "..", "../a", "a/../b", "a/..", "a\0b"]
)
def test_anything_else_is_refused(rel: str) -> None:
    with pytest.raises(UnsafePath) as caught:
        split(rel)
    assert caught.value.rel == rel
    assert str(caught.value) == f"[Errno 40] {rel}: not a plain relative path"


@pytest.mark.parametrize(
    ("mode", "umask", "clean"),
    [
        (0o6755, 0o022, 0o755),  # setuid and setgid dropped
        (0o1777, 0o000, 0o777),  # sticky dropped
        (0o777, 0o022, 0o755),
        (0o666, 0o077, 0o600),
        (0o100644, 0o022, 0o644),  # the file type bits are not a mode
        (0o640, 0o027, 0o640),
    ],
)
def test_modes_from_the_sandbox_lose_special_bits_and_get_the_umask(
    mode: int, umask: int, clean: int
) -> None:
    assert clean_mode(mode, umask) == clean


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[SafeTree]:
    """A workspace with a folder, a file and links already in it."""
    root = tmp_path / "ws"
    (root / "d" / "e").mkdir(parents=True)
    (root / "file").write_text("x")
    (root / "d" / "up").symlink_to("..")  # the workspace root: inside
    (root / "d" / "e" / "upup").symlink_to("../..")  # the root too
    (root / "abs").symlink_to("/etc")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "sub").symlink_to("d/e")
    t = SafeTree(root)
    yield t
    t.close()


INSIDE = [
    ("x", "file"),
    ("x", "."),
    ("x", "d/e/../e"),
    ("d/x", ".."),
    ("d/x", "../file"),
    ("d/e/x", "../../d"),
    ("x", "d/up"),  # a link to a link to the root
    ("x", "d/up/file"),
    ("x", "sub/.."),  # sub is d/e, so sub/.. is d
    ("x", "d/e/upup/d"),
    ("x", "missing/file"),  # dangling, but inside
    ("d/x", "up/d/up/d"),
]
OUTSIDE = [
    ("x", "/etc/passwd"),
    ("x", ".."),
    ("x", "../ws/file"),  # back in by name, but it left on the way: refused
    ("d/x", "../.."),
    ("x", "d/up/.."),  # each link looks inside; together they leave
    ("x", "d/e/upup/.."),
    ("x", "sub/../../.."),
    ("x", "abs"),  # through a link that is absolute
    ("x", "abs/passwd"),
    ("x", "loop1/a"),  # a loop: the kernel gives up too
    ("x", "x/a"),  # through the link being made
    ("x", "missing/../.."),
    ("x", "d//../.."),  # an empty name is no folder to climb out of
    ("x", "d/./../.."),
    ("x", "./../x"),
    ("sub", "sub/.."),  # through the link being replaced: a loop, not its old target
    ("../x", "file"),  # not a plain path where the link would go
    ("", "file"),
]


@pytest.mark.parametrize(("rel", "target"), INSIDE)
def test_links_that_resolve_inside_the_tree(tree: SafeTree, rel: str, target: str) -> None:
    assert tree.link_stays_inside(rel, target) is True
    _agrees_with_the_kernel(tree.root, rel, target, inside=True)


@pytest.mark.parametrize(("rel", "target"), OUTSIDE)
def test_links_that_would_leave_the_tree(tree: SafeTree, rel: str, target: str) -> None:
    assert tree.link_stays_inside(rel, target) is False


def _agrees_with_the_kernel(root: Path, rel: str, target: str, *, inside: bool) -> None:
    """Make the link for real and let the kernel resolve it (missing parts stay missing)."""
    link = root / rel
    link.symlink_to(target)
    try:
        real = Path(os.path.realpath(link))
        assert real.is_relative_to(root.resolve()) is inside, real
    finally:
        link.unlink()


@pytest.mark.parametrize(("chain", "inside"), [(MAX_LINK_HOPS, True), (MAX_LINK_HOPS + 1, False)])
def test_a_chain_of_links_is_followed_as_far_as_the_kernel_would(
    tmp_path: Path, chain: int, inside: bool
) -> None:
    """The kernel follows 40 links in one lookup, then gives up (ELOOP): so do we."""
    assert MAX_LINK_HOPS == 40
    root = tmp_path / "ws"
    root.mkdir()
    (root / "end").write_text("x")
    for i in range(chain):
        (root / f"l{i}").symlink_to(f"l{i + 1}" if i + 1 < chain else "end")
    t = SafeTree(root)
    try:
        assert t.link_stays_inside("x", "l0") is inside
    finally:
        t.close()
