"""The language server with a real VM: open a workspace in a sandbox, exec in it, stream a
terminal, answer a held request with "Add to kit" (the kit is edited with its comments
kept, the request passes), and see the proxy's decisions as diagnostics on the kit. The
agent's terminal is a session that outlives the server (a window reload starts another),
and a guest port that starts listening is offered for publishing, then opened."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from sandkit.vm.image import ensure_image
from tests.cli.test_kit_cli import SANDKIT
from tests.lsp.conftest import start
from tests.vm.conftest import Env

pytestmark = pytest.mark.vm

KIT = """\
schemaVersion: "2"
kind: mixin
name: lsp-demo
# The hosts this project's agent may reach.
permissions:
  network:
    allow:
      - api.test   # our API
environment:
  variables:
    FROM_KIT: "yes"
"""


@pytest_asyncio.fixture
async def editor(env: Env) -> AsyncIterator[LanguageClient]:
    config = ClientServerConfig(server_command=[SANDKIT, "lsp"], server_env=env.vars)
    client = await config.start()
    assert isinstance(client, LanguageClient)
    await start(client)
    yield client
    await client.shutdown_session()


def apply_text_edits(path: Path, edits: Sequence[Any]) -> None:
    lines = path.read_text().splitlines(keepends=True)
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character))[::-1]:
        start, end = edit.range.start, edit.range.end
        offset = sum(len(x) for x in lines[: start.line]) + start.character
        stop = sum(len(x) for x in lines[: end.line]) + end.character
        text = "".join(lines)
        lines = (text[:offset] + edit.new_text + text[stop:]).splitlines(keepends=True)
    path.write_text("".join(lines))


async def run(client: LanguageClient, command: str, args: dict[str, Any]) -> Any:
    return await asyncio.wait_for(
        client.workspace_execute_command_async(types.ExecuteCommandParams(command, [args])), 600
    )


async def test_editor_drives_a_sandbox(
    editor: LanguageClient, env: Env, upstream: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca = upstream
    ws = tmp_path / "ws"
    (ws / "kit").mkdir(parents=True)
    spec = ws / "kit" / "spec.yaml"
    spec.write_text(KIT)
    (ws / ".sandkit.yaml").write_text("agent: shell\nkits: [./kit]\ndefault: deny-all\n")
    asked: list[types.ShowMessageRequestParams] = []
    output: list[str] = []
    exits: list[int] = []
    decisions: list[str] = []

    @editor.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)  # type: ignore[untyped-decorator]
    def ask(
        ls: LanguageClient, params: types.ShowMessageRequestParams
    ) -> types.MessageActionItem | None:
        if "lspbox" not in params.message:
            return None  # about another test's sandbox (the server watches them all)
        asked.append(params)
        answer = "Add to kit" if "other.test" in params.message else "Deny"
        return types.MessageActionItem(title=answer)

    @editor.feature(types.WORKSPACE_APPLY_EDIT)  # type: ignore[untyped-decorator]
    def apply_edit(
        ls: LanguageClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        for change in params.edit.document_changes or []:
            assert isinstance(change, types.TextDocumentEdit)
            apply_text_edits(Path(change.text_document.uri.removeprefix("file://")), change.edits)
        return types.ApplyWorkspaceEditResult(applied=True)

    @editor.feature("sandkit/terminalOutput")  # type: ignore[untyped-decorator]
    def terminal_output(ls: LanguageClient, params: Any) -> None:
        output.append(params.data)

    @editor.feature("sandkit/decision")  # type: ignore[untyped-decorator]
    def decision(ls: LanguageClient, params: Any) -> None:
        decisions.append(params.record.host)

    @editor.feature("sandkit/terminalExit")  # type: ignore[untyped-decorator]
    def terminal_exit(ls: LanguageClient, params: Any) -> None:
        exits.append(params.code)

    pushed: list[list[tuple[str, str]]] = []  # the list of sandboxes, as the server sends it

    @editor.feature("sandkit/sandboxes")  # type: ignore[untyped-decorator]
    def sandboxes(ls: LanguageClient, params: Any) -> None:
        pushed.append([(row.name, row.state) for row in params.sandboxes])

    opened = await run(
        editor,
        "sandkit.openWorkspace",
        {
            "folder": ws.as_uri(),
            "name": "lspbox",
            "memory": "512m",
            "resolve": dict.fromkeys(("api.test", "other.test", "blocked.test"), "127.0.0.1"),
            "upstreamCa": str(ca),
        },
    )
    try:
        assert opened == {"name": "lspbox", "state": "running", "created": True}
        assert editor.progress_reports  # boot (and image) progress reached the editor
        uname = await run(editor, "sandkit.exec", {"name": "lspbox", "argv": ["uname", "-r"]})
        assert uname["code"] == 0 and uname["stdout"].strip() == ensure_image().kernel_release

        streamed = await run(
            editor,
            "sandkit.exec",
            {"name": "lspbox", "argv": ["sh", "-c", "echo $FROM_KIT; exit 3"], "stream": True},
        )
        assert isinstance(streamed["terminal"], int)
        await until(lambda: exits, "the streamed exec's exit")
        assert exits == [3] and "".join(output) == "yes\n"

        def curl(host: str) -> dict[str, Any]:
            argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}:%{http_connect}"]
            return {"name": "lspbox", "argv": [*argv, f"https://{host}:{port}/"]}

        assert (await run(editor, "sandkit.exec", curl("api.test")))["stdout"] == "200:200"
        # Not in the kit: held, asked in the editor, answered "Add to kit", let through.
        assert (await run(editor, "sandkit.exec", curl("other.test")))["stdout"] == "200:200"
        assert [a.title for a in asked[0].actions or []] == [
            "Allow once",
            "Allow for this sandbox",
            "Add to kit",
            "Deny",
        ]
        edited = spec.read_text()
        assert edited == KIT.replace(
            "      - api.test   # our API\n", "      - api.test   # our API\n      - other.test\n"
        )  # the comments and layout are kept
        assert (await run(editor, "sandkit.exec", curl("other.test")))["stdout"] == "200:200"
        assert len(asked) == 1  # the retried request was not asked about again

        assert (await run(editor, "sandkit.exec", curl("blocked.test")))["stdout"] == "000:403"
        uri = spec.resolve().as_uri()
        blocked: list[types.Diagnostic] = await until(  # decisions reach the editor soon
            lambda: [d for d in editor.diagnostics.get(uri, []) if d.code == "blocked-host"],
            "the blocked-host diagnostic",
        )
        assert len(blocked) == 1
        assert blocked[0].message == (
            "1 request to blocked.test blocked (refused-by-user) in sandbox lspbox"
        )
        assert blocked[0].range.start == types.Position(5, 2)  # on `network:`
        current = list(editor.diagnostics.get(uri, []))  # published with the blocked one
        allowed = [d for d in current if d.code == "allowed-host"]
        assert any(
            d.message == "api.test: 1 request allowed" and d.range.start.line == 7 for d in allowed
        )

        # Other tests' sandboxes (the session's shared one) may be in the same store.
        rows = await run(editor, "sandkit.list", {})
        assert ("lspbox", "running") in [(r["name"], r["state"]) for r in rows]
        assert ("lspbox", "running") in pushed[-1]  # sent as it came up, not asked for
        log = await run(editor, "sandkit.showNetworkLog", {"name": "lspbox"})
        assert {r["host"] for r in log} >= {"api.test", "other.test", "blocked.test"}
        assert {"api.test", "other.test", "blocked.test"} <= set(decisions)  # live, too
    finally:
        await run(editor, "sandkit.remove", {"name": "lspbox", "force": True})
    assert list(editor.diagnostics[spec.resolve().as_uri()]) == []  # cleared with the sandbox
    assert "lspbox" not in [name for name, _ in pushed[-1]]  # and gone from the list at once


async def test_held_deletions_are_asked_about_in_the_editor(
    editor: LanguageClient, tmp_path: Path
) -> None:
    ws = tmp_path / "many"
    ws.mkdir()
    for i in range(60):
        (ws / f"f{i}.txt").write_text(str(i))
    asked: list[str] = []

    @editor.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)  # type: ignore[untyped-decorator]
    def ask(
        ls: LanguageClient, params: types.ShowMessageRequestParams
    ) -> types.MessageActionItem | None:
        if "lspsync" not in params.message:
            return None  # about another test's sandbox (the server watches them all)
        asked.append(params.message)
        return types.MessageActionItem(title="Put them back")

    await run(
        editor, "sandkit.openWorkspace", {"folder": str(ws), "name": "lspsync", "memory": "512m"}
    )
    try:
        # The editor answers at once, so the files may be back before `ls` runs: the
        # prompt itself shows that the deletion happened and was held.
        await run(editor, "sandkit.exec", {"name": "lspsync", "argv": ["sh", "-c", "rm -f *.txt"]})
        for _ in range(300):
            if asked:
                break
            await asyncio.sleep(0.1)
        assert asked and "deleted or emptied many files at once" in asked[0]
        for _ in range(100):  # put back in the sandbox, and never deleted on the host
            back = await run(
                editor, "sandkit.exec", {"name": "lspsync", "argv": ["sh", "-c", "ls | wc -l"]}
            )
            if back["stdout"].strip() == "60":
                break
            await asyncio.sleep(0.2)
        assert back["stdout"].strip() == "60"
        assert len(list(ws.glob("f*.txt"))) == 60
    finally:
        await run(editor, "sandkit.remove", {"name": "lspsync", "force": True})


async def until(
    check: Callable[[], Any], what: str, tries: int = 600, seen: Callable[[], Any] = str
) -> Any:
    """Waits for ``check`` to answer something true (the VM runs under TCG: no deadline
    but a generous bound that fails the test with what was awaited)."""
    for _ in range(tries):
        if result := check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"never saw {what}; saw {seen()!r}")


class Window:
    """One editor window's language server, with what it was sent."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.output: dict[int, list[str]] = {}
        self.exits: dict[int, Any] = {}
        self.rows: list[Any] = []
        self.asked: list[str] = []
        self.closed = False

        @client.feature("sandkit/terminalOutput")  # type: ignore[untyped-decorator]
        def output(ls: LanguageClient, params: Any) -> None:
            self.output.setdefault(params.terminal, []).append(params.data)

        @client.feature("sandkit/terminalExit")  # type: ignore[untyped-decorator]
        def exit_(ls: LanguageClient, params: Any) -> None:
            self.exits[params.terminal] = params

        @client.feature("sandkit/sandboxes")  # type: ignore[untyped-decorator]
        def sandboxes(ls: LanguageClient, params: Any) -> None:
            self.rows = list(params.sandboxes)

        @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)  # type: ignore[untyped-decorator]
        def ask(
            ls: LanguageClient, params: types.ShowMessageRequestParams
        ) -> types.MessageActionItem:
            self.asked.append(params.message)
            return (params.actions or [])[0]  # Publish, then Open in Browser

    @classmethod
    async def open(cls, env: Env) -> Window:
        config = ClientServerConfig(server_command=[SANDKIT, "lsp"], server_env=env.vars)
        client = await config.start()
        assert isinstance(client, LanguageClient)
        window = cls(client)
        await start(client)
        return window

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.client.shutdown_session()

    def shown(self) -> list[str]:
        """Pages the server opened in the browser (window/showDocument, external)."""
        return [d.uri for d in self.client.shown_documents if d.external]

    def text(self, terminal: int) -> str:
        return "".join(self.output.get(terminal, []))

    def row(self, name: str) -> Any:
        return next((r for r in self.rows if r.name == name), None)

    def type(self, terminal: int, data: str) -> None:
        self.client.protocol.notify("sandkit/terminalInput", {"terminal": terminal, "data": data})


async def test_the_agent_session_outlives_a_window_reload_and_ports_are_offered(
    env: Env, tmp_path: Path
) -> None:
    ws = tmp_path / "agentws"
    ws.mkdir()
    first = await Window.open(env)
    opening = {"folder": ws.as_uri(), "name": "lspagent", "agent": "shell", "memory": "512m"}
    await run(first.client, "sandkit.openWorkspace", opening)
    second: Window | None = None
    try:
        agent = (await run(first.client, "sandkit.runAgent", {"name": "lspagent"}))["terminal"]
        await until(lambda: "$" in first.text(agent) or "#" in first.text(agent), "a prompt")
        first.type(agent, "echo o''ne\r")  # `one` + newline only once it has run
        await until(
            lambda: "one\r\n" in first.text(agent),
            "one",
            seen=lambda: (first.text(agent), first.exits),
        )

        # A guest service: offered for publishing, published, opened in the browser.
        serve = {"name": "lspagent", "argv": ["python3", "-m", "http.server", "8000"]}
        server = (await run(first.client, "sandkit.exec", {**serve, "stream": True}))["terminal"]
        shown = await until(
            lambda: first.shown(), "the page opened", seen=lambda: (first.asked, first.text(server))
        )
        about = [m for m in first.asked if "port 8000" in m.lower()]
        assert about == [
            "Publish port 8000 of sandbox lspagent?",
            f"Port 8000 of sandbox lspagent is published at {shown[0]}",
        ]
        with urllib.request.urlopen(shown[0], timeout=30) as page:
            assert b"Directory listing" in page.read()
        ports = await until(lambda: (r := first.row("lspagent")) and r.ports, "the port listed")
        assert [(p.guest, p.host_ip) for p in ports] == [(8000, "127.0.0.1")]
        left = await run(first.client, "sandkit.unpublish", {"name": "lspagent", "spec": "8000"})
        assert left == {"ports": []}
        first.client.protocol.notify("sandkit/terminalClose", {"terminal": server})

        # The window reloads: this server goes (the agent's terminal detaches, an exec's
        # program is hung up) without reporting either ended: an exit code would read as
        # the program's failure, while the editor says in each terminal that the server
        # stopped.
        held = {"name": "lspagent", "argv": ["sleep", "6001"], "pty": True, "stream": True}
        sleeper = (await run(first.client, "sandkit.exec", held))["terminal"]
        await until(
            lambda: "sleep 6001" in env.sk("exec", "lspagent", "ps", "-eo", "args").stdout, "sleep"
        )
        await first.close()
        assert agent not in first.exits and sleeper not in first.exits, first.exits
        await until(
            lambda: (
                "sleep 6001"
                not in env.sk("exec", "lspagent", "ps", "-eo", "args", check=True).stdout
            ),
            "the exec hung up",
            tries=60,
        )
        # … and the next one offers the running session, whose screen comes back.
        second = await Window.open(env)
        row = await until(lambda: (r := second.row("lspagent")) and r.sessions and r, "sessions")
        assert [(s.name, s.running) for s in row.sessions] == [("agent", True)]
        again = (
            await run(second.client, "sandkit.attach", {"name": "lspagent", "session": "agent"})
        )["terminal"]
        await until(lambda: "one\r\n" in second.text(again), "the replayed one")
        second.type(again, "echo tw''o\r")  # and it is live, not only a replay
        await until(lambda: "two\r\n" in second.text(again), "two")
        # Run Agent attaches to it rather than starting another.
        third = (await run(second.client, "sandkit.runAgent", {"name": "lspagent"}))["terminal"]
        await until(lambda: "two\r\n" in second.text(third), "the agent's screen")
        await run(second.client, "sandkit.stopSession", {"name": "lspagent"})
        ended = await until(lambda: second.exits.get(again), "the session's end")
        assert ended.detached is False
        row = await until(
            lambda: (r := second.row("lspagent")) and not r.sessions[0].running and r, "ended"
        )
        assert row.sessions[0].exit_status is not None
    finally:
        env.sk("rm", "-f", "lspagent", check=True)
        for window in (first, second):
            if window is not None:
                await window.close()
