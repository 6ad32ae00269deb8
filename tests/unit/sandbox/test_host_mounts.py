"""host-mount@1 on the host and in the guest's first steps: the folder is made once with
the kit's mode and kept as the guest left it; the guest mounts each share (tag hmN, in the
kits' order) before any kit step; a pool member is never prepared for such kits; the
storage key follows the kit's identity, not its commit."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest

from sandkit.kits import model as m
from sandkit.kits.source import KitSource
from sandkit.kits.v3_apply import host_mount_key, kit_identity
from sandkit.sandbox import kitapply
from sandkit.sandbox.hostmounts import host_mount_dir, host_mount_folder
from sandkit.sandbox.kitapply import KitApplyError, apply_kits
from sandkit.sandbox.supervisor.boot import host_mount_folders
from sandkit.tasks import spawn
from sandkit.vm.channel import GuestChannel
from tests.unit.sandbox.fakes import FakeGuest

KEY = "0123456789abcdef0123"
ORIGIN = m.Origin(kit="cache", file="cache/spec.yaml", line=4, column=5)


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / "sandkit" / "host-mounts"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_folder_is_made_once_with_the_kits_mode_and_then_left_as_it_is(
    data_home: Path,
) -> None:
    folder, made = host_mount_folder(KEY, 0o750, None, {"kit": "cache", "path": "/c"})
    assert made and folder == data_home / KEY / "data" == host_mount_dir(KEY) / "data"
    assert (mode(data_home), mode(data_home / KEY), mode(folder)) == (0o700, 0o700, 0o750)
    assert (data_home / KEY / "kit.json").read_text() == '{\n "kit": "cache",\n "path": "/c"\n}\n'
    folder.chmod(0o711)  # the guest changed it: reopening keeps it, and the contents
    (folder / "kept").write_text("x")
    again, made = host_mount_folder(KEY, 0o755, None, {"kit": "cache", "path": "/c"})
    assert (again, made, mode(again)) == (folder, False, 0o711)
    assert (folder / "kept").read_text() == "x"


def test_a_new_folder_is_given_to_the_owner_asked_for() -> None:
    """Root gives it to the guest's agent (uid 1000, as virtiofsd shows it)."""
    owner = (1000, 1000) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    folder, _ = host_mount_folder(KEY, 0o2775, owner, {})
    info = folder.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (*owner, 0o2775)
    assert host_mount_dir(KEY).stat().st_uid == os.geteuid()


def mount(path: str, kit: str = "cache", mode: int | None = None) -> m.HostMount:
    return m.HostMount(
        path=path, mode=mode, kit=kit, key=host_mount_key(source(kit), path), origin=ORIGIN
    )


def source(kit: str, spec_file: str | None = None) -> KitSource:
    return cast(KitSource, type("S", (), {"spec_file": spec_file or f"/kits/{kit}/spec.yaml"})())


def resolved(*mounts: m.HostMount, install: tuple[str, ...] = ()) -> m.ResolvedSandbox:
    from sandkit.kits import resolve

    sandbox = resolve("shell").sandbox
    commands = tuple(m.Command(argv=("sh", "-c", c), user="1000", origin=ORIGIN) for c in install)
    return sandbox.model_copy(update={"host_mounts": mounts, "install": commands})


def test_boot_makes_each_folder_in_the_kits_order(data_home: Path) -> None:
    a, b = mount("/home/agent/.cache/a", mode=0o700), mount("/opt/b")
    resolution = cast(Any, type("R", (), {"sandbox": resolved(a, b)})())
    folders = host_mount_folders(resolution)
    assert folders == [data_home / a.key / "data", data_home / b.key / "data"]
    assert [mode(f) for f in folders] == [0o700, 0o755]  # the kit's mode, else 0755
    assert host_mount_folders(None) == []


async def guest() -> tuple[FakeGuest, GuestChannel]:
    fake = FakeGuest()
    host, other = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=other)
    spawn(fake.serve(reader, writer), "fake-guest")
    reader, writer = await asyncio.open_connection(sock=host)
    channel = GuestChannel(reader, writer)
    spawn(channel.pump(), "pump")
    return fake, channel


async def test_the_shares_are_mounted_by_root_before_the_first_kit_step() -> None:
    fake, channel = await guest()
    sandbox = resolved(mount("/home/agent/.cache/a"), mount("/opt/b b"), install=("echo hi",))
    await apply_kits(channel, sandbox, [], {}, None, None)
    first, *rest = fake.argvs
    assert first == [
        "sh",
        "-c",
        kitapply._MOUNT,
        "sh",
        "hm0",
        "/home/agent/.cache/a",
        "hm1",
        "/opt/b b",
    ]
    assert ["sh", "-c", "echo hi"] in rest
    channel.close()


async def test_a_pool_member_is_never_prepared_for_kits_with_host_mounts() -> None:
    with pytest.raises(KitApplyError, match="cannot be prepared for kits with host-mount"):
        await apply_kits(
            cast(Any, None), resolved(mount("/c")), [], {}, None, None, first_boot_only=True
        )


def test_the_mount_script_makes_the_point_and_waits_for_the_device(tmp_path: Path) -> None:
    """The script itself, with the guest's mount and mountpoint stood in for: the device
    appears only on the third try (a hotplug a moment before)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "log"
    (bin_ / "mountpoint").write_text("#!/bin/sh\nexit 1\n")
    (bin_ / "mount").write_text(
        f'#!/bin/sh\necho "$@" >> {log}\n[ $(wc -l < {log}) -ge 3 ] || {{ echo no device >&2; exit 32; }}\n'
    )
    for f in bin_.iterdir():
        f.chmod(0o755)
    point = tmp_path / "g" / "a b" / "c"
    done = subprocess.run(
        ["sh", "-c", kitapply._MOUNT, "sh", "hm1", str(point)],
        env={"PATH": f"{bin_}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert point.is_dir()
    assert log.read_text().splitlines() == [f"-t virtiofs hm1 {point}"] * 3


def test_the_storage_key_is_the_kits_folder_and_path_and_survives_a_git_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    git = tmp_path / "cache" / "sandkit" / "kits" / "git"
    old = source("k", str(git / "abcd-1111" / "tree" / "kit" / "spec.yaml"))
    new = source("k", str(git / "abcd-2222" / "tree" / "kit" / "spec.yaml"))
    other = source("k", str(git / "ef01-1111" / "tree" / "kit" / "spec.yaml"))
    assert kit_identity(old) == kit_identity(new) == "git:abcd/tree/kit/spec.yaml"
    assert host_mount_key(old, "/c") == host_mount_key(new, "/c") != host_mount_key(other, "/c")
    local = source("k", str(tmp_path / "k" / "spec.yaml"))
    assert kit_identity(local) == str(tmp_path / "k" / "spec.yaml")
