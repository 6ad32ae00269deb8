"""`sandkit login AGENT`: sign in once, on the host. The agent's own login runs in a sandbox
as an attached session, through the proxy: its URL shows here, the code typed here goes to
it, and a callback port it listens on is published while it runs. The proxy rewrites the
token endpoint's answer (net/proxy/oauth.py), so the real tokens land in the host's token
store (net/tokens.py) and the guest only ever holds sentinels; later sandboxes with the same
kits start signed in (sandbox/kitapply.py writes their credential files)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from sandkit.cli.options import add_kit_arg_option, add_shape_options
from sandkit.cli.output import start_showing_progress
from sandkit.errors import SandkitError
from sandkit.sandbox.signin import (
    LoginError,
    Plan,
    blocked_since,
    outcome,
    plan,
    signed_in,
    snapshot,
)

if TYPE_CHECKING:
    from sandkit.cli.attach import Session
    from sandkit.kits.model import ResolvedSandbox
    from sandkit.net.policy import Policy
    from sandkit.sandbox.client import SupervisorClient
    from sandkit.sandbox.store import Config, Sandbox


POLL = 0.5  # seconds between looks at the token store and at the guest's listeners
GRACE = 5.0  # seconds the agent may take to finish on its own once the tokens are stored

DESCRIPTION = """\
Sign in to an agent's subscription once, on this machine. The agent's own login runs in a
sandbox for its kits (a new one, removed afterwards unless --keep; or --sandbox NAME),
attached to this terminal: open the URL it prints in your browser, then paste the code
back here. A login that waits for the browser on a localhost port in the sandbox gets that
port published on this machine while it runs.

The proxy keeps the real tokens on this machine (`sandkit secret ls` shows them, with their
expiry, never their values); the sandbox only ever sees stand-ins. Every sandbox with the
same kits then starts signed in, and its refreshes go through the proxy.

The login command is the agent's own (claude: `claude auth login --claudeai`; codex:
`codex login`); --command runs another. The kits' network rules must allow the token
endpoint and the hosts the login uses: sandkit checks them first and names what is missing."""

EPILOG = """\
examples:
  sandkit login claude
  sandkit login codex --keep
  sandkit login ./my-agent-kit --command 'my-agent auth login'
  sandkit login claude --sandbox claude-proj      sign in inside an existing sandbox"""


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    login = commands.add_parser(
        "login",
        formatter_class=formatter,
        help="sign in to an agent's subscription once; the tokens stay on this machine",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    login.add_argument("agent", metavar="AGENT", help="agent kit: claude, codex, or a kit path")
    login.add_argument(
        "--sandbox",
        metavar="NAME",
        help="sign in inside this existing sandbox (its kits) instead of a new one",
    )
    login.add_argument(
        "--kit", action="append", default=[], metavar="PATH", help="mixin kit (repeatable)"
    )
    add_kit_arg_option(login)
    login.add_argument(
        "--command",
        dest="login_command",  # `command` is the verb's own dest
        metavar="CMD",
        help="the login command to run in the sandbox (default: the agent's own)",
    )
    login.add_argument(
        "--keep",
        action="store_true",
        help="keep the new sandbox (and its empty workspace folder) afterwards",
    )
    add_shape_options(login, disk=False)
    login.add_argument(
        "--default",
        choices=["allow-all", "balanced", "deny-all"],
        default="balanced",
        help="network policy for hosts no kit names (default balanced)",
    )
    login.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST=IP",
        help="pin HOST to IP for the proxy (e.g. a sign-in server on this machine)",
    )
    login.add_argument(
        "--upstream-ca",
        type=Path,
        metavar="FILE",
        help="extra CA for upstream TLS (a corporate inspection CA); trusted in the guest too",
    )


def check_arguments(args: argparse.Namespace) -> None:
    """What argparse cannot say: options that only make sense for a new sandbox."""
    if args.sandbox is None:
        return
    given = [
        flag
        for flag, value in (
            ("--kit", args.kit),
            ("--kit-arg", args.kit_arg),
            ("--keep", args.keep),
            ("--cpus", args.cpus),
            ("--memory", args.memory),
            ("--resolve", args.resolve),
            ("--upstream-ca", args.upstream_ca),
        )
        if value
    ]
    if args.default != "balanced":
        given.append("--default")
    if given:
        raise LoginError(
            f"{', '.join(given)}: not with --sandbox (the sandbox '{args.sandbox}' keeps its "
            "own kits and settings, and is never removed)"
        )


async def converse(
    session: Session,
    *,
    sandbox: str,
    fd: int,
    out: BinaryIO,
    stored: Callable[[], list[str]],
    stop: Callable[[], Awaitable[None]],
    poll: float = POLL,
    grace: float = GRACE,
) -> tuple[int, list[str]]:
    """The session attached to this terminal until it ends; once ``stored`` names services
    (the proxy kept their tokens), the agent gets ``grace`` seconds to finish on its own,
    then ``stop`` ends it. (exit status, services signed in to)."""
    from sandkit.cli.attach import attach_session

    attached = asyncio.ensure_future(attach_session(session, sandbox=sandbox, fd=fd, out=out))
    done: list[str] = []
    try:
        while not attached.done():
            await asyncio.wait({attached}, timeout=poll)
            if not done and (done := stored()):
                await asyncio.wait({attached}, timeout=grace)
                if not attached.done():
                    with contextlib.suppress(SandkitError):  # ended meanwhile
                        await stop()
        status = await attached
    finally:
        attached.cancel()
    return status, done or stored()


def _note(out: BinaryIO, text: str) -> None:
    out.write(f"\r\n[sandkit: {text}]\r\n".encode())  # \r\n: the terminal may be raw
    out.flush()


async def publish_callbacks(
    client: SupervisorClient, baseline: set[int], published: list[str], out: BinaryIO
) -> None:
    """Each guest port that starts listening during the login (its browser callback) is
    published on the same host port, so that the URL it printed (localhost:PORT) works."""
    from sandkit.sandbox.remote import SupervisorError

    ignored = set(baseline)
    while True:
        await asyncio.sleep(1.0)
        result = await client.ports()
        forwarded = {x.guest for x in result.ports}
        for port in sorted(set(result.listening) - ignored - forwarded):
            ignored.add(port)
            spec = f"{port}:{port}"
            try:
                await client.publish(spec)
            except SupervisorError as exc:
                _note(out, f"the login listens on guest port {port}, not published: {exc}")
                continue
            published.append(spec)
            _note(out, f"guest port {port} is published on 127.0.0.1:{port} during the login")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    return asyncio.run(cmd_login(args))


async def cmd_login(args: argparse.Namespace) -> int:
    from sandkit.sandbox import lifecycle
    from sandkit.sandbox.store import Store

    store = Store()
    folder: Path | None = None
    if args.sandbox is not None:
        sandbox, made = store.get(args.sandbox), False
        config = sandbox.config()
        login = plan(*_kits(config), args.login_command)
    else:
        folder = Path(tempfile.mkdtemp(prefix="sandkit-login-"))
        made = True
        try:
            config = _new_config(args, folder)
            login = plan(*_kits(config), args.login_command)
            sandbox = lifecycle.create(store, config, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    try:
        await start_showing_progress(sandbox)
        status, done, blocked = await _sign_in(sandbox, config, login)
    finally:
        if made and not args.keep:
            await lifecycle.remove(store, sandbox, force=True)
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        elif made:
            print(
                f"kept sandbox {sandbox.name} (workspace {folder}); `sandkit rm {sandbox.name}` "
                "removes it",
                file=sys.stderr,
            )
    code, message = outcome(login, done, status, blocked)
    print(message, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _new_config(args: argparse.Namespace, folder: Path) -> Config:
    from sandkit.sandbox.request import SandboxRequest, build
    from sandkit.sandbox.store import default_name

    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", default_name(args.agent, None))[:40].strip("-.")
    request = SandboxRequest(
        agent=args.agent,
        kits=list(args.kit),
        kit_args=dict(args.kit_arg),
        workspace=folder,
        name=f"login-{base}-{secrets.token_hex(3)}",
        cpus=args.cpus,
        memory=args.memory,
        default_policy=args.default,
        resolve=list(args.resolve),
        upstream_ca=args.upstream_ca,
    )
    # Signing in is how a required OAuth credential gets its value: not checked here.
    return build(request, require_credentials=False)


def _kits(config: Config) -> tuple[ResolvedSandbox, Policy]:
    from sandkit.hostconfig import registry_args, registry_hosts
    from sandkit.kits import resolve
    from sandkit.net.actions import DefaultPolicy
    from sandkit.net.service import build_policy

    defaults = dict(config.arg_defaults or registry_args())
    resolved = resolve(config.agent, config.kits, config.kit_args, defaults=defaults).sandbox
    policy = build_policy(resolved, DefaultPolicy(config.default_policy), registry_hosts(defaults))
    return resolved, policy


async def _sign_in(
    sandbox: Sandbox, config: Config, login: Plan
) -> tuple[int, list[str], list[str]]:
    """(the session's exit status, services signed in to, hosts the proxy refused)."""
    import datetime as dt

    from sandkit.cli.terminal import terminal_size
    from sandkit.net.decisions import DecisionLog
    from sandkit.net.tokens import TokenStore
    from sandkit.sandbox import lifecycle

    tokens = TokenStore()
    before = snapshot(tokens, [s for s, _ in login.oauth], sandbox.name)
    fd, out = sys.stdin.fileno(), sys.stdout.buffer
    rows, cols = terminal_size(fd)
    env = {"TERM": os.environ["TERM"]} if "TERM" in os.environ else {}
    published: list[str] = []
    since = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")  # as the log writes
    async with await lifecycle.connect(sandbox) as client:
        baseline = set((await client.ports()).listening)
        session = await client.start_session(
            login.command, name=None, env=env, cwd=config.workspace, rows=rows, cols=cols
        )
        poller = asyncio.ensure_future(publish_callbacks(client, baseline, published, out))
        try:
            status, done = await converse(
                session,
                sandbox=sandbox.name,
                fd=fd,
                out=out,
                stored=lambda: signed_in(tokens, before, sandbox.name),
                stop=lambda: client.stop_session(session.name),
            )
            if not done:  # the proxy flushes its log within FLUSH_S: the refusals are in
                await asyncio.sleep(2 * DecisionLog.FLUSH_S)
            return status, done, blocked_since(sandbox.dir / "decisions.jsonl", since)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, SandkitError):
                await poller
            with contextlib.suppress(SandkitError):  # detached (Ctrl-\ d): the login ends too
                if any(s.name == session.name and s.running for s in await client.sessions()):
                    await client.stop_session(session.name)
            for spec in published:  # the callback port was for the login only
                with contextlib.suppress(SandkitError):
                    await client.unpublish(spec)
