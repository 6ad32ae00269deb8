"""Files the guest makes belong to the person who ran sandkit, with modes from their umask.

CI runs this folder as an ordinary user (scripts/test): there virtiofsd runs in a user
namespace where the guest's agent is that user, and the share itself shows it. As root,
sandkit gives the share to uid 1000 and sync writes the workspace as its owner: the
workspace side of this test holds either way."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.cli.test_kit_cli import SANDKIT
from tests.vm.conftest import Env

UMASK = 0o027  # not the usual 022: the modes below can only come from this one


def arrived(*paths: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(p.exists() for p in paths):
        time.sleep(0.1)
    missing = [str(p) for p in paths if not p.exists()]
    assert not missing, f"never synced to the host: {missing}"


def test_guest_files_are_the_invoking_users_with_their_umask(env: Env, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    # The guest asks for every permission bit (umask 000): the user's umask decides.
    script = (
        f"umask 000 && echo agent > {ws}/by-agent.txt && mkdir {ws}/made && "
        f"sudo sh -c 'umask 000 && echo root > {ws}/made/by-root.txt' && stat -c '%u %n' "
        f"{ws}/by-agent.txt {ws}/made/by-root.txt"
    )
    run = [SANDKIT, "run", "shell", str(ws), "--name", "owner", "--memory", "512m"]
    done = subprocess.run(
        [*run, "--", "sh", "-c", script],
        env=env.vars,
        capture_output=True,
        text=True,
        timeout=600,
        umask=UMASK,  # the supervisor, which syncs, is started with it
    )
    try:
        assert done.returncode == 0, done.stderr
        # Inside, each file is its maker's: the agent (1000) and root (0).
        assert done.stdout.split() == ["1000", f"{ws}/by-agent.txt", "0", f"{ws}/made/by-root.txt"]
        agent_file, made, root_file = ws / "by-agent.txt", ws / "made", ws / "made" / "by-root.txt"
        arrived(agent_file, root_file)
        for path in (agent_file, made, root_file):
            info = path.stat()
            assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid()), path
        assert agent_file.stat().st_mode & 0o7777 == 0o666 & ~UMASK
        assert root_file.stat().st_mode & 0o7777 == 0o666 & ~UMASK
        assert made.stat().st_mode & 0o7777 == 0o777 & ~UMASK
        assert agent_file.read_text() == "agent\n" and root_file.read_text() == "root\n"
        # The share (sandkit's copy, which virtiofsd serves): what the agent made is the
        # user's own on the host, not a foreign uid; as root, sandkit keeps it the guest's.
        shared = env.state / "owner" / "share" / "by-agent.txt"
        assert shared.stat().st_uid == (os.getuid() if os.geteuid() != 0 else 1000)
    finally:
        env.sk("rm", "-f", "owner", timeout=120)


def test_host_edits_reach_what_the_guests_root_made(env: Env, tmp_path: Path) -> None:
    """Run as a user, a folder the guest's root made in the share is one of the user's
    subordinate ids on the host: sync cannot write into it until the guest gives it to
    its agent. A host edit there still arrives, and sync goes on after it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    made = f"mkdir {ws}/by-root && echo guest > {ws}/by-root/f.txt"
    env.sk("run", "shell", str(ws), "--name", "rootmade", "--memory", "512m", "--", "true")
    try:
        env.sk("exec", "rootmade", "--", "sudo", "sh", "-c", made, check=True)
        arrived(ws / "by-root" / "f.txt")
        (ws / "by-root" / "f.txt").write_text("host\n")
        (ws / "later.txt").write_text("later\n")
        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline and seen != "host\nlater\n":
            files = [f"{ws}/by-root/f.txt", f"{ws}/later.txt"]
            seen = env.sk("exec", "rootmade", "--", "cat", *files).stdout
            time.sleep(0.2)
        assert seen == "host\nlater\n"
    finally:
        env.sk("rm", "-f", "rootmade", timeout=120)
