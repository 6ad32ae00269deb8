"""`sandkit attach|sessions|logs`, and what `run` does in a terminal: sessions, which the
supervisor owns (leaving one leaves it running). The terminal loops are in cli/attach.py."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sandkit.cli.attach import Session, attach_session, follow
from sandkit.cli.terminal import terminal_size
from sandkit.errors import SandkitError

if TYPE_CHECKING:
    from sandkit.cli.prompt import ApprovalPrompt
    from sandkit.sandbox.protocol import SessionInfo
    from sandkit.sandbox.store import Sandbox


# -- the verbs: run's attach, attach, sessions, logs ------------------------------------------
AGENT = "agent"  # the session `sandkit run` starts and comes back to
DETACH_HELP = (
    "Detach with Ctrl-\\ Ctrl-\\ (or Ctrl-\\ d): the session keeps running. While sandkit asks\n"
    "about a host no rule allows, answer with Ctrl-\\ then o (allow once), a (allow for this\n"
    "sandbox) or n (deny); every other key goes to the session."
)


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    attach = commands.add_parser(
        "attach",
        formatter_class=formatter,
        help="attach this terminal to a running session (the agent by default)",
        description="Show a session's recent screen and wire this terminal to it. SESSION is\n"
        f"`{AGENT}` (what `sandkit run` starts) by default, else the only running one.\n\n"
        + DETACH_HELP,
        epilog="examples:\n  sandkit attach shell-proj\n  sandkit attach shell-proj 2",
    )
    attach.add_argument("name", metavar="NAME")
    attach.add_argument("session", nargs="?", metavar="SESSION")
    sessions = commands.add_parser(
        "sessions",
        formatter_class=formatter,
        help="list a sandbox's sessions (the agent, exec -d); stop one",
        description="Programs the sandbox owns: the agent that `sandkit run` started and each\n"
        "`sandkit exec -d`. They outlive the terminals attached to them and end with the\n"
        "sandbox; an ended session's exit status is kept.",
        epilog="examples:\n  sandkit sessions shell-proj\n  sandkit sessions shell-proj --stop 1",
    )
    sessions.add_argument("name", metavar="NAME")
    sessions.add_argument("--json", action="store_true", help="print JSON")
    sessions.add_argument(
        "--stop", metavar="SESSION", help="hang up SESSION (SIGHUP, then SIGKILL if it stays)"
    )
    logs = commands.add_parser(
        "logs",
        formatter_class=formatter,
        help="print a session's recent output (-f: follow it)",
        description="Print what SESSION printed recently (its last 256 KiB). SESSION is\n"
        f"`{AGENT}` by default, else the only one. With -f, go on printing until it ends\n"
        "(or Ctrl-C); following never resizes its terminal. SESSION `dockerd` is the\n"
        "Docker Engine's log in a sandbox made with --docker.",
        epilog="examples:\n  sandkit logs -f shell-proj 1\n  sandkit logs shell-proj dockerd",
    )
    logs.add_argument("name", metavar="NAME")
    logs.add_argument("session", nargs="?", metavar="SESSION")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the output")


def run(args: argparse.Namespace) -> int:
    handler = {"attach": cmd_attach, "sessions": cmd_sessions, "logs": cmd_logs}[args.command]
    return asyncio.run(handler(args))


def choose(sessions: Sequence[SessionInfo], wanted: str | None, *, running: bool) -> str:
    """The session a verb means: ``wanted``, else the agent's, else the only one (running
    ones only with ``running``). SandkitError, listing them, when that is not one."""
    candidates = [s for s in sessions if s.running or not running]
    names = [s.name for s in candidates]
    if wanted is not None and wanted in names:
        return wanted
    if wanted is None and AGENT in names:
        return AGENT
    if wanted is None and len(names) == 1:
        return names[0]
    what = "running session" if running else "session"
    listed = ", ".join(names) if names else "none"
    if wanted is not None:
        raise SandkitError(f"no {what} named '{wanted}' (there: {listed})")
    raise SandkitError(
        f"name a {what}: there is more than one ({listed})" if names else f"no {what} here"
    )


async def agent(sandbox: Sandbox, extra: list[str], *, cwd: str | None, timeout: float) -> int:
    """``sandkit run`` in a terminal: back to the running agent session, or start it."""
    from sandkit.sandbox import lifecycle
    from sandkit.sandbox.remote import SupervisorError

    fd = sys.stdin.fileno()
    rows, cols = terminal_size(fd)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(await lifecycle.connect(sandbox))
        prompt = await _prompt(stack, sandbox, timeout)
        session: Session | None = None
        if not any(s.name == AGENT and s.running for s in await client.sessions()):
            argv = (await client.agent_argv(extra, True)).argv
            env = {"TERM": os.environ["TERM"]} if "TERM" in os.environ else {}
            try:
                session = await client.start_session(
                    argv, name=AGENT, env=env, cwd=cwd, rows=rows, cols=cols
                )
            except SupervisorError:  # another client started it meanwhile: attach below
                if not any(s.name == AGENT and s.running for s in await client.sessions()):
                    raise
        elif extra:
            print(
                f"sandkit: the agent is running: attaching to it (`{' '.join(extra)}` is not "
                f"run; `sandkit sessions {sandbox.name} --stop {AGENT}` ends it)",
                file=sys.stderr,
            )
        if session is None:
            session = await client.attach(AGENT, rows, cols)
        return await attach_session(
            session, sandbox=sandbox.name, fd=fd, out=sys.stdout.buffer, prompt=prompt
        )


async def _prompt(
    stack: contextlib.AsyncExitStack, sandbox: Sandbox, timeout: float
) -> ApprovalPrompt:
    """Questions about requests no rule covers, on a connection of their own: its events
    never wait behind the session's output."""
    from sandkit.cli.prompt import ApprovalPrompt
    from sandkit.sandbox import lifecycle

    asking = await stack.enter_async_context(await lifecycle.connect(sandbox))
    return ApprovalPrompt(asking, sys.stderr.buffer, timeout, sandbox.name)


async def cmd_attach(args: argparse.Namespace) -> int:
    from sandkit.sandbox import lifecycle
    from sandkit.sandbox.store import Store

    sandbox = Store().get(args.name)
    fd = sys.stdin.fileno()
    rows, cols = terminal_size(fd)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(await lifecycle.connect(sandbox))
        name = choose(await client.sessions(), args.session, running=True)
        prompt = (
            await _prompt(stack, sandbox, sandbox.config().ask_timeout) if os.isatty(fd) else None
        )
        session = await client.attach(name, rows, cols)
        return await attach_session(
            session, sandbox=sandbox.name, fd=fd, out=sys.stdout.buffer, prompt=prompt
        )


async def cmd_sessions(args: argparse.Namespace) -> int:
    from sandkit.sandbox import lifecycle
    from sandkit.sandbox.store import Store
    from sandkit.ui import since, table

    sandbox = Store().get(args.name)
    async with await lifecycle.connect(sandbox) as client:
        if args.stop:
            await client.stop_session(choose(await client.sessions(), args.stop, running=True))
            print(f"hung up {args.name}/{args.stop}")
            return 0
        sessions = await client.sessions()
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in sessions], indent=2))
        return 0
    rows = [
        (
            s.name,
            shlex.join(s.argv)[:60],
            "running" if s.running else f"exited {s.exit_status}",
            str(s.attached),
            since(s.started) + " ago",
        )
        for s in sessions
    ]
    print(table(rows, ("SESSION", "COMMAND", "STATE/EXIT", "ATTACHED", "STARTED")))
    return 0


DOCKERD = "dockerd"  # `sandkit logs NAME dockerd`: the Docker Engine's log, not a session
DOCKERD_LOG = "/var/log/dockerd.log"  # where the guest agent starts it logging


def dockerd_log_argv(follow: bool) -> list[str]:
    """The guest command that prints dockerd's log as `logs` prints a session's (its last
    256 KiB, -f to follow), or says why there is none."""
    script = (
        '[ -x /usr/sbin/dockerd ] || { echo "this sandbox has no Docker Engine: make one '
        'with sandkit run --docker (or the docker kit)" >&2; exit 1; }; '
        f'[ -e {DOCKERD_LOG} ] || {{ echo "dockerd has not started: the first docker '
        'command starts it" >&2; exit 1; }; '
        f"exec tail -c 262144 {'-F ' if follow else ''}{DOCKERD_LOG}"
    )
    return ["sh", "-c", script]


async def cmd_logs(args: argparse.Namespace) -> int:
    from sandkit.sandbox import lifecycle
    from sandkit.sandbox.store import Store

    sandbox = Store().get(args.name)
    async with await lifecycle.connect(sandbox) as client:
        sessions = await client.sessions()
        if args.session == DOCKERD and all(s.name != DOCKERD for s in sessions):
            from sandkit.cli.attach import run_exec

            remote = await client.exec(dockerd_log_argv(args.follow), user="root")
            return await run_exec(remote, fd=sys.stdin.fileno(), pty=False, stdin=False)
        name = choose(sessions, args.session, running=False)
        session = await client.attach(name, interactive=False)
        await follow(session, sys.stdout.buffer, until_exit=args.follow)
    return 0
