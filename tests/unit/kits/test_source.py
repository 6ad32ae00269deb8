"""Kit sources: directories, spec files and zips; nothing a kit ships may reach outside it."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from sandkit.kits import KitError, load_kit
from sandkit.kits.source import open_source
from tests.conftest import WriteKit

SPEC = 'schemaVersion: "2"\nkind: mixin\nname: zipped\n'


def test_directory_and_spec_path(write_kit: WriteKit) -> None:
    root = write_kit(
        SPEC,
        files={
            "files/home/.bashrc": "alias ll='ls -l'\n",
            "files/workspace/notes/todo.md": "- a\n",
            "README.md": "x",
        },
    )
    for location in (root, root / "spec.yaml"):
        kit = load_kit(location).kit
        assert [(s.target, s.path) for s in kit.static_files] == [
            ("home", ".bashrc"),
            ("workspace", "notes/todo.md"),
        ]
    assert open_source(root).read("files/home/.bashrc").startswith(b"alias")


def _zip(path: Path, entries: dict[str, str], symlinks: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("prefix", ["", "my-kit/"])
def test_zip(tmp_path: Path, prefix: str) -> None:
    archive = _zip(
        tmp_path / "kit.zip", {f"{prefix}spec.yaml": SPEC, f"{prefix}files/home/a.txt": "a"}
    )
    loaded = load_kit(archive)
    assert loaded.kit.name == "zipped"
    assert loaded.source.spec_file == f"{archive}!{prefix}spec.yaml"
    assert [(s.target, s.path) for s in loaded.kit.static_files] == [("home", "a.txt")]
    assert loaded.source.read("files/home/a.txt") == b"a"


@pytest.mark.parametrize(
    ("entries", "symlinks", "message"),
    [
        ({"spec.yaml": SPEC, "../evil": "x"}, (), "unsafe entry name in the zip"),
        ({"spec.yaml": SPEC, "/etc/cron.d/x": "x"}, (), "unsafe entry name in the zip"),
        ({"spec.yaml": SPEC}, ("files/home/link",), "kits may not ship symlinks"),
        ({"other.yaml": SPEC}, (), "no spec.yaml at the top of the zip"),
    ],
)
def test_unsafe_zips_are_refused(
    tmp_path: Path, entries: dict[str, str], symlinks: tuple[str, ...], message: str
) -> None:
    with pytest.raises(KitError, match=message):
        load_kit(_zip(tmp_path / "kit.zip", entries, symlinks))


def test_symlink_in_kit_directory_is_refused(write_kit: WriteKit) -> None:
    root = write_kit(SPEC, files={"files/home/ok": "x"})
    (root / "files" / "home" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(KitError, match="kits may not ship symlinks") as caught:
        load_kit(root)
    assert caught.value.issues[0].file.endswith("files/home/passwd")


def test_reads_never_leave_the_kit(write_kit: WriteKit, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    root = write_kit(SPEC)
    (root / "via-link").symlink_to(tmp_path / "secret")
    source = open_source(root)
    for rel in ("../secret", "/etc/passwd", "via-link", "missing"):
        with pytest.raises(KeyError):
            source.read(rel)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such kit"),
        ("empty-dir", "no spec.yaml in this directory"),
        ("bad-zip", "not a readable zip file"),
        ("latin1", "spec is not UTF-8 text"),
    ],
)
def test_unreadable_sources(tmp_path: Path, setup: str, message: str) -> None:
    target = tmp_path / "kit"
    if setup == "empty-dir":
        target.mkdir()
    elif setup == "bad-zip":
        target = tmp_path / "kit.zip"
        target.write_bytes(b"not a zip")
    elif setup == "latin1":
        target.mkdir()
        (target / "spec.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(KitError, match=message):
        load_kit(target)
