"""The pure parts of the host checks: subordinate id files, the fix's free range, the
guest's id map; and which system-cache images a user may trust."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandkit.vm.hostcheck import IdRange, free_range, guest_map, parse_ranges, usable
from sandkit.vm.image import FILES, load, trusted

SUBUID = """\
# a comment
alice:100000:65536
1001:165536:65536
bob:231072:1000
broken line
carol:x:65536
"""


def test_ranges_by_name_or_number() -> None:
    assert parse_ranges(SUBUID, "alice", 1000) == [IdRange(100000, 65536)]
    assert parse_ranges(SUBUID, "dave", 1001) == [IdRange(165536, 65536)]
    assert parse_ranges(SUBUID, None, 1001) == [IdRange(165536, 65536)]
    assert parse_ranges(SUBUID, "carol", 1002) == []  # unreadable count: no range
    assert parse_ranges(SUBUID, "nobody", 65534) == []


def test_a_range_too_small_for_the_guest_is_not_usable() -> None:
    assert usable(parse_ranges(SUBUID, "bob", 1003)) is None
    assert usable([IdRange(231072, 1000), IdRange(300000, 70000)]) == IdRange(300000, 70000)


def test_the_suggested_range_overlaps_no_one() -> None:
    free = free_range(SUBUID, "alice:296608:65536\n")
    assert free == IdRange(362144, 65536)
    assert free_range("", "") == IdRange(100000, 65536)
    assert free.end == 362144 + 65535


def test_the_guest_map_makes_the_agent_the_user() -> None:
    lines = guest_map(1234, IdRange(100000, 65536))
    assert lines == [(0, 100000, 1000), (1000, 1234, 1), (1001, 101000, 64536)]
    inside = [i for start, _, count in lines for i in range(start, start + count)]
    outside = [o for _, start, count in lines for o in range(start, start + count)]
    assert inside == list(range(65537))  # root, the agent and every id up to nobody
    assert len(set(outside)) == len(outside)  # one to one
    with pytest.raises(ValueError):
        guest_map(1234, IdRange(100000, 1000))


def make_image(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in FILES:
        (path / name).write_bytes(b"x" * 10)
        (path / name).chmod(0o644)
    (path / "manifest.json").write_text(
        json.dumps({"key": "k", "kernel_release": "6.1", "files": dict.fromkeys(FILES, 10)})
    )
    (path / "manifest.json").chmod(0o644)
    for folder in (path, path.parent, path.parent.parent):
        folder.chmod(0o755)
    return path


def test_a_shared_image_is_trusted_only_if_nobody_else_can_change_it(tmp_path: Path) -> None:
    # The owner is a parameter so that this runs as anyone: the real check asks for root.
    me = os.getuid()
    image = make_image(tmp_path / "sandkit" / "images" / "k")
    assert trusted(image, owner=me) and load(image) is not None
    assert not trusted(image, owner=me + 1)  # another user's files: never
    (image / "rootfs.ext4").chmod(0o664)  # group-writable
    assert not trusted(image, owner=me)
    (image / "rootfs.ext4").chmod(0o644)
    image.parent.chmod(0o777)  # anyone could swap the image folder
    assert not trusted(image, owner=me)
    image.parent.chmod(0o755)
    (image / "vmlinux").unlink()
    (image / "vmlinux").symlink_to(image / "initrd.cpio")  # a link to elsewhere
    assert not trusted(image, owner=me)
    assert not trusted(tmp_path / "missing", owner=me)
