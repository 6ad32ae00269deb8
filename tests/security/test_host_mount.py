"""host-mount@1 storage on the host: a kit names only a path in the guest, never where the
storage is; the key that names the host folder is checked again before it is used (it
reaches the supervisor in a model a stranger's kit shaped); the folders are the owner's
alone whatever the umask; and the guest, root and hostile in the shared folder, cannot make
sandkit follow or open what it plants there (links, fifos, devices, setuid files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sandkit.errors import SandkitError
from sandkit.kits import load_kit
from sandkit.kits.issues import KitError
from sandkit.sandbox.hostmounts import host_mount_dir, host_mount_folder
from tests.conftest import WriteKit
from tests.security.conftest import mode

KEY = "feedfacefeedfacefeed"
WORKLOAD = 'schemaVersion: "3"\nkind: workload\ncapabilities:\n'


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / "sandkit" / "host-mounts"


@pytest.mark.parametrize(
    "key",
    ["..", "../../etc", "a/b", "/etc", "abc\0def", "0" * 65, "", "ABCDEF0123456789", "feed face"],
)
def test_a_key_sandkit_did_not_make_is_refused_before_anything_is_made(
    key: str, data_home: Path, tmp_path: Path
) -> None:
    with pytest.raises(SandkitError, match="is not a storage key sandkit made"):
        host_mount_folder(key, 0o755, None, {})
    with pytest.raises(SandkitError):
        host_mount_dir(key)
    assert not data_home.exists() or list(data_home.iterdir()) == []
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/home/agent/../../etc", "canonical"),
        ("/x/./y", "canonical"),
        ("x/y", "absolute"),
        ("/", "not '/' itself"),
        ('"/x\\0y"', "NUL"),
        ("/" + "a" * 256, "too long"),
        ("/" + "a/" * 2100 + "a", "too long"),
    ],
)
def test_a_guest_path_that_is_not_a_plain_mount_point_is_refused_at_validation(
    write_kit: WriteKit, path: str, message: str
) -> None:
    text = WORKLOAD + f"  - type: com.docker.sandbox/host-mount@1\n    config: {{path: {path}}}\n"
    with pytest.raises(KitError) as caught:
        load_kit(write_kit(text))
    assert any(message in i.message for i in caught.value.issues)


def test_a_kit_cannot_name_a_host_folder(write_kit: WriteKit) -> None:
    for field in ("host", "source", "hostPath", "key"):
        text = WORKLOAD + (
            f"  - type: com.docker.sandbox/host-mount@1\n    config: {{path: /c, {field}: /etc}}\n"
        )
        with pytest.raises(KitError):
            load_kit(write_kit(text))


def test_the_storage_is_the_owners_alone_whatever_the_umask(
    data_home: Path, open_umask: None
) -> None:
    data_home.mkdir(parents=True, mode=0o755)
    data_home.chmod(0o755)  # left open by an older tool or a careless hand
    (data_home / KEY).mkdir(mode=0o777)
    (data_home / KEY).chmod(0o777)
    folder, _ = host_mount_folder(KEY, 0o777, None, {"kit": "k", "path": "/c"})
    assert mode(data_home) == mode(data_home / KEY) == 0o700
    assert mode(data_home / KEY / "kit.json") == 0o600
    assert folder.parent == data_home / KEY  # what the guest sees sits inside the 0700 one


def test_a_setuid_mode_from_a_kit_is_not_applied(data_home: Path) -> None:
    folder, _ = host_mount_folder(KEY, 0o4777, None, {})
    assert mode(folder) == 0o777


@pytest.mark.parametrize("where", ["key", "data"])
def test_a_link_where_a_folder_goes_is_refused_never_followed(
    data_home: Path, tmp_path: Path, where: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    outside.chmod(0o755)
    data_home.mkdir(parents=True)
    if where == "key":
        (data_home / KEY).symlink_to(outside)
    else:
        (data_home / KEY).mkdir()
        (data_home / KEY / "data").symlink_to(outside)
    with pytest.raises(SandkitError, match="not a folder"):
        host_mount_folder(KEY, 0o777, (1000, 1000), {"kit": "k", "path": "/c"})
    info = outside.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o755, os.getuid())
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("kind", ["fifo", "file", "device"])
def test_a_fifo_file_or_device_where_the_shared_folder_goes_is_refused_unopened(
    data_home: Path, kind: str
) -> None:
    """A fifo would block an open that is not refused first; a device could be anything."""
    (data_home / KEY).mkdir(parents=True)
    node = data_home / KEY / "data"
    if kind == "fifo":
        os.mkfifo(node)
    elif kind == "file":
        node.write_text("x")
    elif os.geteuid() == 0:
        os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    else:
        os.mkfifo(node)  # only root makes device nodes: a fifo stands for one
    with pytest.raises(SandkitError, match="not a folder"):
        host_mount_folder(KEY, 0o755, None, {})


def test_what_the_guest_plants_inside_is_left_alone(data_home: Path, tmp_path: Path) -> None:
    """Reopening the storage (every start) walks nothing the guest made: its links, fifos
    and setuid files stay as they are, and their targets are untouched."""
    folder, _ = host_mount_folder(KEY, 0o755, None, {})
    secret = tmp_path / "secret"
    secret.write_text("s")
    secret.chmod(0o600)
    (folder / "link").symlink_to(secret)
    (folder / "loop").symlink_to(folder / "loop")
    os.mkfifo(folder / "fifo")
    (folder / "suid").write_text("#!/bin/sh\n")
    (folder / "suid").chmod(0o4755)
    (data_home / KEY / "kit.json").unlink()
    (data_home / KEY / "kit.json").symlink_to(secret)  # not the guest's, but no link is followed
    again, made = host_mount_folder(KEY, 0o777, None, {"kit": "k", "path": "/c"})
    assert (again, made) == (folder, False)
    assert secret.read_text() == "s" and mode(secret) == 0o600
    assert mode(folder / "suid") == 0o4755 and stat.S_ISFIFO((folder / "fifo").lstat().st_mode)
    assert (folder / "link").readlink() == secret
