"""A guest that floods exec output at a client that does not read it: the output pauses in
the guest (flow control on the guest channel, backpressure from the client's socket), and
the supervisor's memory stays bounded instead of growing with every byte the guest sends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.store import Store
from tests.vm.conftest import Box

pytestmark = pytest.mark.vm

RSS_BOUND = 150 << 20


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
    raise AssertionError(f"no VmRSS for {pid}")


async def request(
    writer: asyncio.StreamWriter, rid: int, method: str, params: dict[str, Any]
) -> None:
    writer.write(json.dumps({"id": rid, "method": method, "params": params}).encode() + b"\n")
    await writer.drain()


async def test_a_flood_at_a_reader_that_does_not_read_keeps_the_supervisor_bounded(
    box: Box,
) -> None:
    assert box.run_output.returncode == 0, box.run_output.stderr
    sandbox = Store().get(box.name)
    pid = sandbox.state().supervisor_pid
    assert pid is not None
    # A raw connection: a client that stops reading its socket at once (SupervisorClient
    # would first take up to its inbox's bound).
    reader, writer = await asyncio.open_unix_connection(str(sandbox.control), limit=1 << 22)
    await request(writer, 1, "exec", {"argv": ["base64", "/dev/zero"], "user": "agent"})
    exec_id = None
    seen = 0
    while seen < 4 << 20:  # it floods: 4 MiB arrive, then this client stops reading
        message = json.loads(await reader.readline())
        if message.get("id") == 1:
            assert "error" not in message, message
            exec_id = message["result"]["exec"]
        elif message.get("event") == "output":
            seen += len(message["data"])
    assert exec_id is not None

    await asyncio.sleep(10)  # the guest would send ~1.5 GB in this time, unpaused
    assert rss(pid) < RSS_BOUND, f"supervisor RSS {rss(pid) >> 20} MiB after 10 s"

    # Paused, not stuck: the channel still answers, and reading again resumes the stream.
    async with await SupervisorClient.connect(sandbox.control) as other:
        await asyncio.wait_for(other.guest_ping(), 60)
    resumed = 0
    while resumed < 8 << 20:
        message = json.loads(await asyncio.wait_for(reader.readline(), 60))
        if message.get("event") == "output" and message.get("exec") == exec_id:
            resumed += len(message["data"])
    await request(writer, 2, "signal", {"exec": exec_id, "signal": 9})
    while True:
        message = json.loads(await asyncio.wait_for(reader.readline(), 60))
        if message.get("event") == "exit" and message.get("exec") == exec_id:
            assert message.get("signal") == 9
            break
    writer.close()
    assert rss(pid) < RSS_BOUND
