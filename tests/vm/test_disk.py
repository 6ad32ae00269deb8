"""The guest's disk: 20 GiB (sbx's default, sparse) whatever the image's own size, seen by
the guest's root filesystem, from a restored snapshot and after a restart alike."""

from __future__ import annotations

from pathlib import Path

from tests.vm.conftest import Env

GIB = 1 << 30


def root_size(env: Env, name: str) -> int:
    done = env.sk("exec", name, "--", "df", "-B1", "--output=size", "/", check=True)
    return int(done.stdout.split()[-1])


def test_the_root_filesystem_has_the_default_disk(env: Env, tmp_path: Path) -> None:
    name = "disk"
    env.sk(
        "run", "shell", str(tmp_path), "--name", name, "--memory", "512m", "--", "true", check=True
    )
    try:
        size = root_size(env, name)
        assert 19 * GIB < size <= 20 * GIB  # ext4's own metadata takes a little
        blocks = env.sk("exec", name, "--", "cat", "/sys/block/vda/size", check=True)
        assert int(blocks.stdout) * 512 == 20 * GIB
        disk = env.state / name / "disk.qcow2"
        assert disk.stat().st_blocks * 512 < 2 * GIB  # sparse: only what was written
        env.sk("stop", name, check=True)
        assert root_size(env, name) == size  # a restart boots the grown disk as it is
    finally:
        env.sk("rm", "-f", name)
