"""Security invariant 11 for YAML: no kit or workspace file, however deep, crashes a host
process. Nesting past the cap is a positioned error (file, line, column, what to do),
found before anything recurses over the document: in `sandkit kit validate` (a process
of its own, so a crash shows as a signal) and in the language server."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from sandkit.kits import KitError, load_text
from sandkit.tasks import spawn
from sandkit.vm.channel import GuestChannel
from tests.cli.test_kit_cli import SANDKIT
from tests.lsp.conftest import start

MAX_DEPTH = 100  # the cap the loader documents (kits.yamlpos.MAX_DEPTH)
DEEP_FLOW = "[" * 30_000 + "]" * 30_000  # 60 KB: libyaml's composer used to segfault on it


def deep_block(levels: int) -> str:
    """A block-style document ``levels`` deep: a list in a list in a list … (compact, so
    that it stays small: 2 bytes a level)."""
    return "- " * levels + "x\n"


def validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    kit = tmp_path / "deep"
    kit.mkdir(exist_ok=True)
    (kit / "spec.yaml").write_text(text)
    return subprocess.run(
        [SANDKIT, "kit", "validate", str(kit)], capture_output=True, text=True, timeout=60
    )


def test_a_deep_flow_document_is_a_positioned_error_not_a_crash(tmp_path: Path) -> None:
    done = validate(tmp_path, DEEP_FLOW)
    assert done.returncode == 1, (done.returncode, done.stderr[-500:])
    spec = tmp_path / "deep" / "spec.yaml"
    # Line 1, the column of the first bracket past the cap, and what to do about it.
    assert f"{spec}:1:{MAX_DEPTH + 1}: error: YAML nested more than {MAX_DEPTH}" in done.stderr
    assert "flatten" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_deep_block_document_is_a_positioned_error(tmp_path: Path) -> None:
    done = validate(
        tmp_path, 'schemaVersion: "2"\nkind: mixin\nname: x\nextra:\n' + deep_block(30_000)
    )
    assert done.returncode == 1, (done.returncode, done.stderr[-500:])
    assert f"nested more than {MAX_DEPTH} levels" in done.stderr
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr


def test_aliases_cannot_nest_deeper_than_the_text_does() -> None:
    # Each anchor is 40 levels deep and holds the previous one: 60 of them, 2,400 levels
    # once expanded, from a document whose text is never more than 41 deep.
    lines = ['schemaVersion: "2"', "kind: mixin", "name: x", "a0: &a0 x"]
    for i in range(1, 60):
        lines.append(f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40)
    with pytest.raises(KitError) as caught:
        load_text("\n".join(lines) + "\n", "/kits/alias/spec.yaml")
    (issue,) = caught.value.issues
    assert f"nested more than {MAX_DEPTH} levels" in issue.message
    assert issue.span.line > 3  # at the node where the cap was crossed, not the top

    # Nesting under the cap is left to the kit's own checks (here: an unknown key).
    levels = MAX_DEPTH - 2  # the kit's mapping and 'extra' are two levels more
    text = 'schemaVersion: "2"\nkind: mixin\nname: x\nextra: ' + "[" * levels + "]" * levels
    with pytest.raises(KitError) as caught:
        load_text(text + "\n", "/kits/ok/spec.yaml")
    assert [i.code for i in caught.value.issues] == ["unknown-key"], caught.value


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[SANDKIT, "lsp"]))  # type: ignore[untyped-decorator]
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def _diagnostics(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    for _ in range(100):
        if uri in client.diagnostics:
            return list(client.diagnostics.pop(uri))
        await asyncio.sleep(0.1)
    raise AssertionError(f"no diagnostics for {uri}")


async def test_the_language_server_survives_deep_documents(
    client: LanguageClient, tmp_path: Path
) -> None:
    # A deep .sandkit.yaml beside the kit: opening the kit makes the server read it.
    (tmp_path / ".sandkit.yaml").write_text(DEEP_FLOW)
    spec = tmp_path / "kit" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text('schemaVersion: "2"\nkind: mixin\nname: kit\n')
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(spec.as_uri(), "yaml", 1, spec.read_text())
        )
    )
    assert await _diagnostics(client, spec.as_uri()) == []

    deep = tmp_path / "deep" / "spec.yaml"
    for version, text in enumerate((DEEP_FLOW, deep_block(30_000)), start=1):
        if version == 1:
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    types.TextDocumentItem(deep.as_uri(), "yaml", 1, text)
                )
            )
        else:
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(version=version, uri=deep.as_uri()),
                    [types.TextDocumentContentChangeWholeDocument(text)],
                )
            )
        (diag,) = await _diagnostics(client, deep.as_uri())
        assert f"nested more than {MAX_DEPTH} levels" in diag.message
        assert diag.severity == types.DiagnosticSeverity.Error
        # Still serving that very document, and the others.
        position = types.Position(0, 5)
        await client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(deep.as_uri()), position)
        )
        await client.text_document_completion_async(
            types.CompletionParams(types.TextDocumentIdentifier(deep.as_uri()), position)
        )
        await client.text_document_document_symbol_async(
            types.DocumentSymbolParams(types.TextDocumentIdentifier(deep.as_uri()))
        )


# -- the guest channel -------------------------------------------------------------------

HOSTILE_GUEST = r"""
import base64, json, socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(1)
conn, _ = server.accept()
conn.sendall(b'{"op":"ready","version":1}\n')
request = json.loads(conn.makefile("rb").readline())
rid = request["id"]
conn.sendall(json.dumps({"op": "started", "id": rid, "window": 65536}).encode() + b"\n")
# Then output without end, never waiting for an acknowledgement.
chunk = base64.b64encode(b"x" * 65536).decode()
line = json.dumps({"op": "output", "id": rid, "stream": "stdout", "data": chunk}).encode()
try:
    for _ in range(int(sys.argv[2])):
        conn.sendall(line + b"\n")
except OSError:
    pass
"""


@pytest.fixture
async def channel_to(
    tmp_path: Path,
) -> AsyncIterator[Callable[[list[str]], Awaitable[GuestChannel]]]:
    """A GuestChannel to a guest agent served by a program of the test's choosing."""
    procs: list[subprocess.Popen[bytes]] = []
    channels: list[GuestChannel] = []

    async def connect(argv: list[str]) -> GuestChannel:
        procs.append(subprocess.Popen(argv))
        channel = await GuestChannel.connect(tmp_path / "agent.sock", 30)
        channels.append(channel)
        spawn(channel.pump(), "test-pump")
        return channel

    yield connect
    for channel in channels:
        channel.close()
    for proc in procs:
        proc.kill()
        proc.wait()


async def test_a_guest_that_ignores_its_window_cannot_grow_the_host(
    channel_to: Callable[[list[str]], Awaitable[GuestChannel]], tmp_path: Path
) -> None:
    # 256 MiB of output at a consumer that takes it slowly: the host holds a bounded amount
    # (it stops reading the channel), where it used to queue all of it.
    sock = str(tmp_path / "agent.sock")
    channel = await channel_to([sys.executable, "-c", HOSTILE_GUEST, sock, "4096"])
    tracemalloc.start()
    try:
        execution = await channel.exec(["flood"])
        taken = 0
        while taken < 32 << 20:
            event = await execution.next()
            assert event["op"] == "output"
            taken += len(event["data"])
            await asyncio.sleep(0.002)  # a slow reader (a terminal, a busy editor)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"the host held {peak >> 20} MiB for a slow reader"


async def test_the_guest_agent_pauses_output_no_one_takes(
    channel_to: Callable[[list[str]], Awaitable[GuestChannel]], tmp_path: Path
) -> None:
    # The real guest agent, on a pty as it has its virtio port in the VM (socat plays QEMU).
    port, sock = tmp_path / "port", tmp_path / "agent.sock"
    socat = subprocess.Popen(["socat", f"PTY,link={port},rawer", f"UNIX-LISTEN:{sock}"])
    try:
        for _ in range(500):
            if port.exists():
                break
            await asyncio.sleep(0.01)
        code = "import sys; from sandkit.guest.agent import Agent; Agent(sys.argv[1], {}).run()"
        channel = await channel_to([sys.executable, "-c", code, str(port)])
        flood = await channel.exec(["yes"], cwd=str(tmp_path))
        assert flood.window is not None  # the agent agreed to flow control
        # No one takes the flood's output: it stops at its window in the guest, so the
        # channel is never held up and other commands still run...
        done = await asyncio.wait_for(channel.run(["echo", "hi"], cwd=str(tmp_path)), 60)
        assert done.stdout == b"hi\n"
        for _ in range(3):
            await asyncio.wait_for(channel.ping(), 60)
        assert 0 < flood.buffered <= flood.window * 3 // 2 + (1 << 16)
        # ...and taking it resumes the stream, acknowledgement after acknowledgement.
        taken = 0
        while taken < 8 << 20:
            event = await asyncio.wait_for(flood.next(), 60)
            assert event["op"] == "output"
            taken += len(base64.b64decode(event["data"]))
        await flood.signal(9)
        while (event := await asyncio.wait_for(flood.next(), 60))["op"] != "exit":
            pass
        assert event.get("signal") == 9
    finally:
        socat.kill()
        socat.wait()
