"""GuestChannel against the real guest agent, without QEMU: the agent (guest/agent.py, as
it runs in the VM) is a host process whose virtio port is a pty, and socat plays QEMU's
chardev, exposing it as the unix socket the host connects to. Only ops that touch
nothing outside the test's folder run here: adopt (hostname, /etc) is the VM tests'."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import pwd
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandkit.rpc import LINE_LIMIT, ConnectionLost
from sandkit.tasks import spawn
from sandkit.vm.channel import WINDOW, ChannelError, GuestChannel

AGENT = "import sys; from sandkit.guest.agent import Agent; Agent(sys.argv[1], {}).run()"
# A guest that deleted /dev (`sudo rm -rf /` does): /dev/null and /dev/ptmx are gone.
NO_DEV = """
import os
def gone(path):
    raise FileNotFoundError(2, "No such file or directory", path)
real_open = os.open
os.open = lambda path, *a, **k: gone(path) if str(path).startswith("/dev/") else real_open(path, *a, **k)
os.openpty = lambda: gone("/dev/ptmx")
"""
GUARD = 30  # seconds: a hang fails the test instead of the run


@dataclass
class Guest:
    channel: GuestChannel
    agent: subprocess.Popen[bytes]
    qemu: subprocess.Popen[bytes]  # socat, which plays QEMU's part
    folder: Path


async def until(condition: Callable[[], bool]) -> None:
    """Polls a condition no event announces (a file appearing, bytes arriving)."""
    async with asyncio.timeout(GUARD):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.fixture
async def guest(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Guest]:
    port, sock = tmp_path / "port", tmp_path / "agent.sock"
    socat = subprocess.Popen(["socat", f"PTY,link={port},rawer", f"UNIX-LISTEN:{sock}"])
    agent: subprocess.Popen[bytes] | None = None
    channel: GuestChannel | None = None
    try:
        await until(port.exists)
        code = getattr(request, "param", "") + AGENT  # a prelude that breaks the guest
        agent = subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=tmp_path)
        channel = await GuestChannel.connect(sock, GUARD)
        pump = spawn(channel.pump(), "test-pump")
        work = tmp_path / "work"
        work.mkdir()
        yield Guest(channel, agent, socat, work)
        channel.close()
        await asyncio.wait_for(pump, GUARD)
    finally:
        for proc in (agent, socat):
            if proc is not None:
                proc.kill()
                proc.wait()


async def test_exec_output_and_exit_code(guest: Guest) -> None:
    done = await asyncio.wait_for(
        guest.channel.run(["sh", "-c", "echo out; echo err >&2; exit 3"], cwd=str(guest.folder)),
        GUARD,
    )
    assert (done.stdout, done.stderr, done.code, done.signal) == (b"out\n", b"err\n", 3, None)
    assert done.exit_status == 3


async def test_a_program_that_cannot_run_exits_127(guest: Guest) -> None:
    done = await asyncio.wait_for(guest.channel.run(["/no/such/program"]), GUARD)
    assert done.code == 127 and b"cannot run" in done.stderr


@pytest.mark.parametrize("guest", [NO_DEV], indirect=True)
async def test_a_guest_without_dev_still_runs_commands_and_refuses_a_pty(guest: Guest) -> None:
    """Commands without stdin get an empty pipe, not /dev/null; a pty that cannot be
    made ends the exec (126) instead of the request, so the host's cleanup (a chown
    after `rm -rf /`) carries on."""
    done = await asyncio.wait_for(guest.channel.run(["sh", "-c", "cat; echo ran"]), GUARD)
    assert (done.stdout, done.code) == (b"ran\n", 0)
    tty = await asyncio.wait_for(guest.channel.run(["true"], pty=True), GUARD)
    assert tty.code == 127 and b"cannot run 'true'" in tty.stderr
    again = await asyncio.wait_for(guest.channel.run(["true"]), GUARD)
    assert again.code == 0


async def test_a_command_runs_as_the_user_asked_for_with_their_groups(guest: Guest) -> None:
    """Another user's command is forked and execs with that user's ids and groups (what
    `setpriv --init-groups` did); its exec failing is reported as posix_spawn's is."""
    ids = await asyncio.wait_for(
        guest.channel.run(["sh", "-c", "id -u; id -g; id -G"], user="nobody", cwd="/"), GUARD
    )
    missing = await asyncio.wait_for(
        guest.channel.run(["/no/such/program"], user="nobody", cwd="/"), GUARD
    )
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        groups = sorted(os.getgrouplist("nobody", nobody.pw_gid))
        assert ids.code == 0, ids
        uid, gid, *rest = ids.stdout.decode().split("\n")
        assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid), ids
        assert sorted(int(g) for g in rest[0].split()) == groups
        assert missing.code == 127 and b"cannot run" in missing.stderr
    else:  # the agent (here not root) cannot change ids: refused, not run as itself
        assert ids.code == 126 and b"cannot run" in ids.stderr and not ids.stdout
        assert missing.code == 126


PROBE = (
    'read -r pid comm state ppid pgrp sid tty rest < /proc/$$/stat; [ "$sid" = $$ ] && echo leader;'
    ' [ "$tty" != 0 ] && echo controlling; grep SigIgn /proc/$$/status; ls -m /proc/$$/fd;'
    ' pwd; echo "$PROBE_VAR $USER"'
)


@pytest.mark.parametrize("pty", [False, True])
@pytest.mark.parametrize("user", ["root", "nobody"])
async def test_a_command_starts_alike_as_root_and_as_another_user(
    guest: Guest, user: str, pty: bool
) -> None:
    """Its own session (with the pty as its controlling terminal), no signal ignored,
    nothing of the agent's but fds 0-2, the folder and variables asked for, whether it was
    posix_spawn'd (root) or forked by _posixsubprocess with another user's ids."""
    done = await asyncio.wait_for(
        guest.channel.run(
            ["sh", "-c", PROBE], user=user, pty=pty, cwd=str(guest.folder), env={"PROBE_VAR": "v"}
        ),
        GUARD,
    )
    if user != "root" and os.geteuid() != 0:  # the agent (not root) cannot change ids
        assert done.code == 126 and b"cannot run" in done.stderr
        return
    assert done.code == 0, done
    lead, *ctty, ignored, fds, folder, env = done.stdout.decode().replace("\r", "").splitlines()
    assert (lead, ctty) == ("leader", ["controlling"] if pty else [])
    pipe_and_xfsz = 1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)
    assert int(ignored.removeprefix("SigIgn:"), 16) & pipe_and_xfsz == 0, ignored
    assert fds == "0, 1, 2"  # the shell's, listed by its child
    assert (folder, env) == (str(guest.folder), f"v {user}")


async def test_another_users_command_is_found_in_its_path_and_root_comes_back(
    guest: Guest,
) -> None:
    """The agent takes the user's ids only while it spawns: the next command is root's."""
    if os.geteuid() == 0:
        ran = await asyncio.wait_for(guest.channel.run(["id", "-u"], user="nobody", cwd="/"), GUARD)
        assert ran.stdout == f"{pwd.getpwnam('nobody').pw_uid}\n".encode(), ran
    lost = await asyncio.wait_for(
        guest.channel.run(["id"], user="nobody", cwd="/", env={"PATH": "/nowhere"}), GUARD
    )
    assert lost.code == (127 if os.geteuid() == 0 else 126), lost
    after = await asyncio.wait_for(guest.channel.run(["sh", "-c", "id -u; id -G"]), GUARD)
    uid, *gids = after.stdout.decode().split()
    assert (uid, {int(g) for g in gids}) == (str(os.geteuid()), {os.getegid(), *os.getgroups()})


async def test_stdin_reaches_the_program(guest: Guest) -> None:
    execution = await guest.channel.exec(["cat"], stdin=True, cwd=str(guest.folder))
    await execution.stdin(b"hello ")
    await execution.stdin(b"guest", eof=True)
    done = await asyncio.wait_for(execution.wait(), GUARD)
    assert (done.stdout, done.code) == (b"hello guest", 0)


async def test_a_signal_ends_the_program_as_the_shell_reports_it(guest: Guest) -> None:
    execution = await guest.channel.exec(["cat"], stdin=True, cwd=str(guest.folder))
    await execution.signal(signal.SIGTERM)
    done = await asyncio.wait_for(execution.wait(), GUARD)
    assert (done.code, done.signal, done.exit_status) == (None, signal.SIGTERM, 128 + 15)


async def test_a_pty_has_the_size_asked_for_and_resizes(guest: Guest) -> None:
    script = "stty size; read line; stty size"
    execution = await guest.channel.exec(
        ["sh", "-c", script], pty=True, rows=40, cols=123, cwd=str(guest.folder)
    )
    seen = b""
    while b"40 123" not in seen:  # the first size, before the resize
        event = await asyncio.wait_for(execution.next(), GUARD)
        assert event["op"] == "output", event
        seen += base64.b64decode(event["data"])
    await execution.resize(50, 132)
    await execution.stdin(b"go\n")
    done = await asyncio.wait_for(execution.wait(), GUARD)
    assert b"50 132" in done.stdout and done.code == 0


async def test_output_no_one_takes_pauses_the_program_at_its_window(guest: Guest) -> None:
    # 3 MiB through a window of 1 MiB: with no consumer the child blocks, so the marker it
    # writes after its output cannot appear. (A guest that ignored the window would send
    # all of it: past what the host holds per request, the channel would stall and the
    # ping below would never come back.)
    marker = guest.folder / "finished"
    script = f"head -c {3 << 20} /dev/zero; touch {marker}"
    flood = await guest.channel.exec(["sh", "-c", script], cwd=str(guest.folder))
    assert flood.window == WINDOW
    await until(lambda: flood.buffered >= WINDOW * 4 // 3)
    await asyncio.wait_for(guest.channel.ping(), GUARD)
    assert not guest.channel.closed.is_set()
    assert not marker.exists()
    # Taking the output acknowledges it: the child goes on to the end.
    done = await asyncio.wait_for(flood.wait(keep=4 << 20), GUARD)
    assert (len(done.stdout), done.code) == (3 << 20, 0)
    assert marker.exists()


async def test_write_and_read_files(guest: Guest) -> None:
    channel, path = guest.channel, str(guest.folder / "sub" / "file")
    assert await channel.read_file(path) is None
    assert await channel.write_file(path, b"one", mode=0o600)
    assert Path(path).stat().st_mode & 0o777 == 0o600
    assert not await channel.write_file(path, b"two", keep=True)
    assert await channel.write_file(path, b"+more", append=True)
    assert await channel.read_file(path) == b"one+more"
    with pytest.raises(ChannelError, match="IsADirectoryError"):
        await channel.read_file(str(guest.folder))


async def test_a_garbage_line_from_the_host_is_refused_and_the_channel_goes_on(
    guest: Guest,
) -> None:
    for garbage in (b"this is not json\n", b"[1]\n", b'"op"\n', b"null\n"):
        guest.channel.writer.write(garbage)
    await asyncio.wait_for(guest.channel.ping(), GUARD)
    assert guest.agent.poll() is None  # the agent (PID 1's child in the VM) lives on
    done = await asyncio.wait_for(guest.channel.run(["true"]), GUARD)
    assert done.code == 0 and not guest.channel.closed.is_set()


async def test_a_lost_guest_ends_what_waits_on_it(guest: Guest) -> None:
    channel = guest.channel
    execution = await channel.exec(["cat"], stdin=True, cwd=str(guest.folder))
    guest.qemu.kill()  # the VM is gone (the agent's cat ends when the fixture kills it)
    event = await asyncio.wait_for(execution.next(), GUARD)
    assert event["op"] == "exit" and event["lost"] and event["signal"] == 9
    assert (await asyncio.wait_for(execution.wait(), GUARD)).exit_status == 128 + 9
    await asyncio.wait_for(channel.closed.wait(), GUARD)
    await asyncio.wait_for(channel.ping(), GUARD)  # returns: there is no one to ask
    with pytest.raises(ChannelError, match="gone"):
        await channel.read_file("/etc/hostname")
    with pytest.raises(ConnectionLost):
        await channel.exec(["true"])


async def test_a_hostile_guest_s_garbage_is_skipped_and_an_endless_line_ends_the_channel() -> None:
    host_end, guest_end = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=host_end, limit=LINE_LIMIT)
    channel = GuestChannel(reader, writer)
    pump = spawn(channel.pump(), "test-pump")
    g_reader, g_writer = await asyncio.open_unix_connection(sock=guest_end)
    try:
        asked = spawn(channel.read_file("/x"), "ask")
        request = await asyncio.wait_for(g_reader.readline(), GUARD)
        assert b'"op":"read"' in request
        g_writer.write(
            b"\xff\xfe not json\n"
            b"[1, 2, 3]\n"
            b'{"op": "file", "id": "1", "data": "eA=="}\n'  # not its id: a string
            b'{"op": "file", "id": 99, "data": "eA=="}\n'  # no such request
            b"\n"
            # Unasked messages past what the host would hold: dropped, not kept.
            + b'{"op": "error", "error": "%s"}\n' % (b"x" * 1000) * 3000
            + b'{"op": "file", "id": 1, "data": "b2s="}\n'
        )
        await g_writer.drain()
        assert await asyncio.wait_for(asked, GUARD) == b"ok"
        assert not channel.closed.is_set()
        # A line without end: past the bound the channel ends, waiting requests with it.
        asked = spawn(channel.read_file("/y"), "ask")
        await asyncio.wait_for(g_reader.readline(), GUARD)
        g_writer.write(b'{"op": "file", "data": "' + b"A" * (LINE_LIMIT + 1))
        with contextlib.suppress(ConnectionError):  # the host hangs up part way
            await g_writer.drain()
        with pytest.raises(ChannelError, match="gone"):
            await asyncio.wait_for(asked, GUARD)
        assert channel.closed.is_set()
        assert channel.connection.lost is not None and "line" in str(channel.connection.lost)
    finally:
        channel.close()
        g_writer.close()
        await asyncio.wait_for(pump, GUARD)
