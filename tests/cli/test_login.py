"""`sandkit login` without a VM: what it refuses before anything is made (the arguments, a
kit with nothing to sign in to, a login whose hosts the kit does not allow or whose token
answer the proxy would not see), and how a login session ends: without tokens (exit 1,
saying what happened) or once the proxy stored them (the session is ended, exit 0). The
login inside a real sandbox is tests/vm/test_login.py."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import time
from pathlib import Path

import pytest

from sandkit.cli.login import converse
from sandkit.kits.model import OAuthSpec
from sandkit.net.decisions import Decision
from sandkit.net.oauth import Tokens
from sandkit.net.tokens import TokenStore
from sandkit.sandbox.protocol import SessionExitEvent, SessionOutputEvent
from sandkit.sandbox.signin import Plan, blocked_since, outcome, signed_in, snapshot
from tests.cli.test_credentials_cli import sk
from tests.cli.test_host_prerequisites import nothing_made
from tests.conftest import WriteKit

SessionEvent = SessionOutputEvent | SessionExitEvent


def oauth_kit(name: str, token_host: str, allow: list[str]) -> str:
    return f"""
    schemaVersion: "2"
    kind: sandbox
    name: {name}
    sandbox:
      image: docker/sandbox-templates:shell
      entrypoint: [bash, -l]
    permissions:
      network:
        allow: {allow}
    credentials:
      - service: svc
        oauth:
          tokenEndpoint: {{host: {token_host}, path: /oauth/token}}
          resourceHosts: [api.test]
          sentinels: {{accessToken: at-managed, refreshToken: rt-managed}}
    """


def refused(tmp_path: Path, *args: str) -> str:
    done = sk(tmp_path, "login", *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    nothing_made(tmp_path)
    return done.stderr


def test_sandbox_options_are_refused_with_sandbox(tmp_path: Path) -> None:
    err = refused(tmp_path, "claude", "--sandbox", "box", "--kit", "x", "--keep")
    assert "--kit, --keep: not with --sandbox" in err


def test_an_unknown_sandbox_is_named(tmp_path: Path) -> None:
    assert "no sandbox named 'nowhere'" in refused(tmp_path, "claude", "--sandbox", "nowhere")


def test_a_kit_without_oauth_has_nothing_to_sign_in_to(tmp_path: Path) -> None:
    err = refused(tmp_path, "shell")
    assert "declares no OAuth credential" in err and "sandkit secret set" in err


def test_an_agent_sandkit_does_not_know_needs_command(tmp_path: Path, write_kit: WriteKit) -> None:
    kit = write_kit(oauth_kit("my-agent", "auth.test", ["auth.test", "api.test"]))
    err = refused(tmp_path, str(kit))
    assert "my-agent" in err and "--command" in err


def test_a_token_endpoint_the_kit_does_not_allow_is_named(
    tmp_path: Path, write_kit: WriteKit
) -> None:
    kit = write_kit(oauth_kit("my-agent", "auth.test", ["api.test"]))
    err = refused(tmp_path, str(kit), "--command", "my-agent login", "--default", "deny-all")
    assert "do not allow auth.test (the token endpoint)" in err


def test_a_login_host_the_kit_does_not_allow_is_named(tmp_path: Path, write_kit: WriteKit) -> None:
    # Named claude: the built-in login (claude auth login) and its hosts apply.
    kit = write_kit(oauth_kit("claude", "platform.claude.com", ["platform.claude.com"]))
    err = refused(tmp_path, str(kit), "--default", "deny-all")
    assert "do not allow api.anthropic.com (a host the login uses)" in err


def test_a_login_whose_token_answer_the_proxy_would_not_see_is_refused(
    tmp_path: Path, write_kit: WriteKit
) -> None:
    # The agent exchanges its code elsewhere than the kit's tokenEndpoint: the answer
    # would pass the proxy untouched, real tokens and all.
    kit = write_kit(oauth_kit("claude", "console.example", ["console.example"]))
    err = refused(tmp_path, str(kit))
    assert "exchanges its code at platform.claude.com" in err and "console.example" in err


# -- the session ---------------------------------------------------------------------------
class ScriptedSession:
    """A session whose program prints ``lines``, then ends on its own with ``exit_code``
    once a line is typed (as a login that reads a code does), or when ``stop`` hangs it up
    (as session-stop does)."""

    name = "1"
    screen = b""

    def __init__(self, lines: list[bytes], exit_code: int | None) -> None:
        self.events: asyncio.Queue[SessionEvent] = asyncio.Queue()
        for line in lines:
            self.events.put_nowait(
                SessionOutputEvent(
                    session=self.name, stream="stdout", data=base64.b64encode(line).decode()
                )
            )
        self.exit_code = exit_code
        self.typed = b""
        self.stopped = False

    async def next(self) -> SessionEvent:
        return await self.events.get()

    async def input(self, data: bytes = b"", eof: bool = False) -> None:
        self.typed += data
        if self.exit_code is not None and b"\n" in data:
            self.events.put_nowait(SessionExitEvent(session=self.name, code=self.exit_code))

    async def resize(self, rows: int, cols: int) -> None:
        pass

    async def detach(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True
        self.events.put_nowait(SessionExitEvent(session=self.name, signal=1))


def keys(text: bytes) -> int:
    """A read end that yields ``text`` and then its end, as a pipe into sandkit does."""
    read, write = os.pipe()
    os.write(write, text)
    os.close(write)
    return read


PLAN = Plan(
    "my-agent",
    (("svc", OAuthSpec(token_host="auth.test", token_path="/oauth/token")),),
    ("my-agent", "login"),
)


def test_a_login_that_ends_without_tokens_exits_1_saying_what_happened(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "oauth.json")
    before = snapshot(store, ["svc"], "box")
    session = ScriptedSession([b"Open https://auth.test/authorize\r\n", b"bad code\r\n"], 3)
    out, fd = io.BytesIO(), keys(b"the-code\n")
    try:
        status, done = asyncio.run(
            converse(
                session,
                sandbox="box",
                fd=fd,
                out=out,
                stored=lambda: signed_in(store, before, "box"),
                stop=session.stop,
                poll=0.01,
            )
        )
    finally:
        os.close(fd)
    assert (status, done) == (3, [])
    assert b"Open https://auth.test/authorize" in out.getvalue()  # the URL, shown here
    assert session.typed == b"the-code\n" and not session.stopped
    code, message = outcome(PLAN, done, status)
    assert code == 1
    assert "not signed in to svc" in message and "exit status 3" in message
    assert "https://auth.test/oauth/token" in message


def test_a_sign_in_the_proxy_stored_ends_the_session_and_exits_0(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "oauth.json")
    store.put("svc", Tokens("an-older-sign-in", None, time.time() - 60))
    before = snapshot(store, ["svc"], "box")
    session = ScriptedSession([b"Open https://auth.test/authorize\r\n"], None)

    async def login() -> tuple[int, list[str]]:
        async def proxy_stores_tokens() -> None:
            await asyncio.sleep(0.05)
            assert not signed_in(store, before, "box")  # the old entry is not a sign-in
            store.put("svc", Tokens("real-access", "real-refresh", time.time() + 3600))

        fd = keys(b"")
        try:
            _, result = await asyncio.gather(
                proxy_stores_tokens(),
                converse(
                    session,
                    sandbox="box",
                    fd=fd,
                    out=io.BytesIO(),
                    stored=lambda: signed_in(store, before, "box"),
                    stop=session.stop,
                    poll=0.01,
                    grace=0.01,
                ),
            )
        finally:
            os.close(fd)
        return result

    status, done = asyncio.run(login())
    assert done == ["svc"] and session.stopped  # the agent kept running: it was ended
    code, message = outcome(PLAN, done, status)
    assert code == 0
    assert message == (
        "signed in to svc; the tokens stay on this machine; sandboxes with the my-agent "
        "kit start signed in"
    )


@pytest.mark.parametrize("command", ["", "   "])
def test_an_empty_command_is_refused(tmp_path: Path, write_kit: WriteKit, command: str) -> None:
    kit = write_kit(oauth_kit("my-agent", "auth.test", ["auth.test", "api.test"]))
    assert "--command is empty" in refused(tmp_path, str(kit), "--command", command)


def test_what_the_proxy_refused_during_the_login_is_said(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    old = Decision("box", "CONNECT", "tunnel", "before.test", 443, "blocked", "default-deny")
    old.time = "2026-01-01T00:00:00.000+00:00"
    seen = [
        Decision("box", "CONNECT", "tunnel", "auth.test", 443, "allowed", "allow-rule"),
        Decision("box", "CONNECT", "tunnel", "login.test", 443, "blocked", "default-deny"),
        Decision("box", "CONNECT", "tunnel", "login.test", 443, "blocked", "default-deny"),
    ]
    log.write_text("".join(d.to_json() + "\n" for d in [old, *seen]))
    blocked = blocked_since(log, "2026-06-01T00:00:00.000+00:00")
    assert blocked == ["login.test:443 (default-deny)"]
    code, message = outcome(PLAN, [], 7, blocked)
    assert code == 1 and message.endswith("; the proxy blocked login.test:443 (default-deny)")
    assert blocked_since(tmp_path / "none.jsonl", "") == []  # no request made: no log
