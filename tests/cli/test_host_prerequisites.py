"""What the host lacks is said once, with the command that fixes it, before anything is
built: exit 1, no traceback, no image (not even half of one), no sandbox left behind.

A user without subordinate ids is a real one here: `unshare --map-user` runs sandkit as
`nobody`, which /etc/subuid gives nothing, whoever runs the tests (root or not)."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from sandkit.vm.hostcheck import SUBGID, SUBUID, parse_ranges
from tests.cli.test_kit_cli import SANDKIT


def fresh_env(root: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root / "home"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "SANDKIT_POOL_SIZE": "0",
    }


def nothing_made(root: Path) -> None:
    assert not (root / "cache" / "sandkit" / "images").exists()  # no image, no build folder
    sandboxes = root / "state" / "sandkit" / "sandboxes"
    assert not sandboxes.exists() or not any(sandboxes.iterdir())


def test_missing_subordinate_ids_name_the_fix_and_build_nothing(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    for path in (SUBUID, SUBGID):
        text = path.read_text() if path.exists() else ""
        assert not parse_ranges(text, "nobody", nobody.pw_uid), f"{path} gives ids to nobody"
    ws = tmp_path / "ws"
    ws.mkdir()
    as_nobody = ["unshare", "--user", f"--map-user={nobody.pw_uid}", f"--map-group={nobody.pw_gid}"]
    for command in (["run", "shell", str(ws), "--", "true"], ["image", "build"]):
        done = subprocess.run(
            [*as_nobody, SANDKIT, *command],
            env=fresh_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "sandboxes cannot run as nobody" in done.stderr
        assert "no subordinate ids" in done.stderr
        [fix] = [line for line in done.stderr.splitlines() if "usermod" in line]
        command_line = fix.split("Fix, as root: ", 1)[1]
        words = command_line.split()
        assert words[:2] == ["usermod", "--add-subuids"] and words[3] == "--add-subgids"
        assert words[2] == words[4] and words[5:] == ["nobody"], command_line
        first, last = (int(n) for n in words[2].split("-"))
        assert last - first + 1 >= 65536
        nothing_made(tmp_path)


def test_a_shape_the_host_cannot_run_is_refused_first(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    cpus = len(os.sched_getaffinity(0))
    for options, said in (
        (["--cpus", str(cpus + 1)], f"use --cpus {cpus} or fewer"),
        (["--memory", "100000g"], "is not below this machine's"),
        (["--name=bad!"], "is not a valid sandbox name"),
    ):
        done = subprocess.run(
            [SANDKIT, "run", "shell", str(ws), *options, "--", "true"],
            env=fresh_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and said in done.stderr, (options, done.stderr)
        assert "Traceback" not in done.stderr
        nothing_made(tmp_path)
