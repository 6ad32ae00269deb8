"""A kit downloaded from a stranger: no name it ships can place a file outside the sandbox's
share, and a link in the share (the guest's) is never written through by kit placement."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from sandkit.kits import KitError, load_kit, resolve
from sandkit.kits.source import unsafe_path
from sandkit.sandbox.kitapply import place_workspace_files

SPEC = 'schemaVersion: "2"\nkind: mixin\nname: stranger\n'


def _zip(path: Path, entries: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("spec.yaml", SPEC)
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/home/user/.ssh")
    return path


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("files/workspace//tmp/evil", "empty path component"),
        ("files/workspace/./x", "'.' path component"),
        ("files/workspace/../../x", "'..' path component"),
        ("files/home/a\\..\\..\\x", "backslash"),
        ("C:/evil", "drive letter"),
        ("/etc/cron.d/evil", "absolute path"),
    ],
)
def test_zip_entries_that_are_not_plain_paths_are_refused_with_the_entry_named(
    tmp_path: Path, name: str, why: str
) -> None:
    archive = _zip(tmp_path / "kit.zip", {name: b"payload"})
    with pytest.raises(KitError, match="unsafe entry name in the zip") as caught:
        load_kit(archive)
    assert why in str(caught.value)
    assert repr(name) in caught.value.issues[0].file  # shown as typed, escapes visible


def test_a_trailing_slash_makes_a_folder_entry_that_places_no_file(tmp_path: Path) -> None:
    """zipfile reads 'x/' as a folder, whatever bytes it carries: nothing is placed for it,
    and as a file name the rule would refuse it."""
    archive = _zip(tmp_path / "kit.zip", {"files/workspace/x/": b"payload"})
    with zipfile.ZipFile(archive) as zf:
        assert [i.is_dir() for i in zf.infolist()] == [False, True]
    assert load_kit(archive).kit.static_files == ()
    assert "empty path component" in (unsafe_path("files/workspace/x/") or "")


def test_a_link_entry_in_a_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KitError, match="kits may not ship symlinks"):
        load_kit(_zip(tmp_path / "kit.zip", {}, links=("files/workspace/keys",)))


def test_nul_and_empty_names_are_refused() -> None:
    assert unsafe_path("files/workspace/a\0b") is not None
    assert unsafe_path("") is not None
    assert unsafe_path("files/workspace/ok.txt") is None


def test_a_folder_kit_whose_files_folder_is_a_link_is_a_kit_error(tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "spec.yaml").write_text(SPEC)
    (tmp_path / "elsewhere" / "workspace").mkdir(parents=True)
    (tmp_path / "elsewhere" / "workspace" / "x").write_text("x")
    (kit / "files").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KitError, match="kits may not ship symlinks") as caught:
        load_kit(kit)
    assert caught.value.issues[0].file.endswith("files")


def test_a_folder_kit_with_a_linked_subfolder_is_a_kit_error(tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    (kit / "files" / "workspace").mkdir(parents=True)
    (kit / "spec.yaml").write_text(SPEC)
    (kit / "files" / "workspace" / "sub").symlink_to("/etc")
    with pytest.raises(KitError, match="kits may not ship symlinks"):
        load_kit(kit)


def test_placement_never_writes_through_a_link_in_the_share(tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    (kit / "files" / "workspace" / "bin").mkdir(parents=True)
    (kit / "spec.yaml").write_text(SPEC)
    (kit / "files" / "workspace" / "bin" / "ls").write_text("#!/bin/sh\necho owned\n")
    (kit / "files" / "workspace" / "notes.md").write_text("hello\n")
    workspace, share = tmp_path / "ws", tmp_path / "share"
    workspace.mkdir()
    share.mkdir()
    victim = tmp_path / "home" / ".local" / "bin"
    victim.mkdir(parents=True)
    (share / "bin").symlink_to(victim)  # the guest swapped bin/ for a link to a host folder
    (share / "notes.md").symlink_to(tmp_path / "home" / "notes-target")
    resolution = resolve("shell", [str(kit)], {}, defaults={})
    placed = place_workspace_files(resolution.sandbox, list(resolution.loaded), share, workspace)
    assert list(victim.iterdir()) == []
    assert not (tmp_path / "home" / "notes-target").exists()
    assert placed == []
    # Where nothing is in the way, the kit's file lands in the share (and only there).
    (share / "bin").unlink()
    placed = place_workspace_files(resolution.sandbox, list(resolution.loaded), share, workspace)
    assert placed == ["bin/ls"]
    assert (share / "bin" / "ls").read_text().endswith("owned\n")
