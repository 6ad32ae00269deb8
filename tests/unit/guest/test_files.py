"""The guest agent's file writes (guest/files.py), called directly: the agent runs as root
in the guest and writes kits' files for the guest user, in folders that user may own."""

from __future__ import annotations

import base64
import os
import pwd
from pathlib import Path

import pytest

from sandkit.guest.files import write_file

ROOT = os.geteuid() == 0
# As root: files for another user. Otherwise (CI as an ordinary user) ids cannot change:
# the files are this user's, and the links they make are links root does not own.
OWNER = pwd.getpwnam("nobody") if ROOT else pwd.getpwuid(os.getuid())


def write(path: Path, data: bytes, **fields: object) -> bool:
    request = {"path": str(path), "data": base64.b64encode(data).decode(), **fields}
    return write_file({"user": OWNER.pw_name, **request})


def users_folder(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, OWNER.pw_uid, OWNER.pw_gid)
    return home


def plant(link: Path, target: Path) -> None:
    """A link made by the guest user (root cannot tell it from theirs but by its owner)."""
    link.symlink_to(target)
    os.lchown(link, OWNER.pw_uid, OWNER.pw_gid)


def test_missing_folders_belong_to_the_files_owner_as_mkdir_p_would_make_them(
    tmp_path: Path,
) -> None:
    home = users_folder(tmp_path)
    assert write(home / ".config" / "app" / "settings.json", b"{}", mode=0o600)
    for made in (home / ".config", home / ".config" / "app"):
        st = made.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (OWNER.pw_uid, OWNER.pw_gid, 0o755)
    st = (home / ".config" / "app" / "settings.json").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (OWNER.pw_uid, 0o600)
    assert tmp_path.stat().st_uid == os.geteuid()  # what was there keeps its owner
    assert write_file({"path": str(tmp_path / "etc" / "conf"), "data": ""})  # root's: root's
    assert (tmp_path / "etc").stat().st_uid == os.geteuid()


def test_a_folder_link_the_user_planted_is_not_followed(tmp_path: Path) -> None:
    home, etc = users_folder(tmp_path), tmp_path / "etc"
    etc.mkdir()
    plant(home / ".config", etc)
    with pytest.raises(OSError, match="a link root does not own"):
        write(home / ".config" / "app" / "settings.json", b"owned")
    with pytest.raises(OSError, match="a link root does not own"):
        write_file({"path": str(home / ".config" / "passwd"), "data": "", "user": "root"})
    assert list(etc.iterdir()) == []


def test_a_file_link_the_user_planted_is_replaced_never_written_through(tmp_path: Path) -> None:
    home, secret = users_folder(tmp_path), tmp_path / "shadow"
    secret.write_text("root's\n")
    plant(home / "notes.sandkit-tmp", secret)  # the name the agent writes to, then renames
    plant(home / "bundle.pem", secret)
    assert write(home / "notes", b"mine")
    with pytest.raises(OSError):  # appending follows no link either
        write(home / "bundle.pem", b"more", append=True)
    assert secret.read_text() == "root's\n" and secret.stat().st_uid == os.geteuid()
    assert (home / "notes").read_bytes() == b"mine" and not (home / "notes").is_symlink()
    assert not (home / "notes.sandkit-tmp").exists()


def test_a_link_root_owns_is_followed(tmp_path: Path) -> None:
    """/bin -> usr/bin and its kind: made by root (the image), not by the guest user."""
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "lib").symlink_to("usr/lib")  # relative, owned by whoever runs the tests
    (tmp_path / "abs").symlink_to(tmp_path / "usr")
    if not ROOT:  # then this user owns the links: refused as the guest user's would be
        with pytest.raises(OSError, match="a link root does not own"):
            write(tmp_path / "lib" / "tool" / "conf", b"x")
        return
    assert write(tmp_path / "lib" / "tool" / "conf", b"x")
    assert write(tmp_path / "abs" / "lib" / "tool" / "more", b"y")
    made = tmp_path / "usr" / "lib" / "tool"
    assert made.stat().st_uid == OWNER.pw_uid
    assert sorted(p.name for p in made.iterdir()) == ["conf", "more"]


def test_keep_leaves_an_existing_file_and_writes_a_missing_one(tmp_path: Path) -> None:
    home = users_folder(tmp_path)
    assert write(home / "a" / "file", b"one", keep=True)
    assert not write(home / "a" / "file", b"two", keep=True)
    assert write(home / "a" / "file", b"+more", append=True)
    assert (home / "a" / "file").read_bytes() == b"one+more"
