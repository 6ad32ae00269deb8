"""`sandkit run`: a sandbox made or adopted and started, then its agent: in a session with
a terminal, bound to this command without one, or one of the kit's session verbs
(`--prompt`, `--continue`, `--resume`). A warm-pool member is sent its adoption before
this module's callers import asyncio and pydantic (sandbox/warm.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.cli.output import start_showing_progress
from sandkit.cli.sandbox import existing_sandbox, sandbox_config
from sandkit.sandbox.store import Sandbox, Store

if TYPE_CHECKING:
    from sandkit.sandbox.agent_command import SessionRequest
    from sandkit.sandbox.store import Config
    from sandkit.sandbox.warm import Claim


def add_session_options(p: argparse.ArgumentParser) -> None:
    """The agent kit's session verbs (agent-sessions@1; with a terminal,
    agent-interactive-sessions@1 where the kit declares it)."""
    verbs = p.add_mutually_exclusive_group()
    verbs.add_argument(
        "--prompt",
        metavar="TEXT",
        help="run the agent on one prompt (the kit's 'prompt' session verb)",
    )
    verbs.add_argument(
        "--continue",
        dest="continue_session",
        action="store_true",
        help="reopen the agent's most recent session (the kit's 'continue' verb)",
    )
    verbs.add_argument(
        "--resume",
        metavar="ID",
        help="reopen the agent's session ID (the kit's 'resume' verb)",
    )


def session_request(args: argparse.Namespace) -> SessionRequest | None:
    """The session verb `run` was given, if any (without one, the kit engine stays
    unloaded: this runs on the warm start's light path)."""
    prompt, resume = getattr(args, "prompt", None), getattr(args, "resume", None)
    continued = getattr(args, "continue_session", False)
    if prompt is None and resume is None and not continued:
        return None
    from sandkit.kits.agent_sessions import Verb
    from sandkit.sandbox.agent_command import SessionRequest

    if prompt is not None:
        return SessionRequest(Verb.PROMPT, prompt=prompt)
    if continued:
        return SessionRequest(Verb.CONTINUE)
    return SessionRequest(Verb.RESUME, session_id=resume)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def refuse_undeclared_verb(args: argparse.Namespace, config: Config) -> None:
    """A session verb the agent kit does not declare fails now, before the sandbox is
    made, adopted or started (the supervisor's own check stays: the kit may change)."""
    session = session_request(args)
    if session is not None:
        from sandkit.sandbox.request import check_session_verb

        check_session_verb(config, session, _interactive())


def send_adoption(args: argparse.Namespace) -> tuple[Config, Path | None, Claim | None] | None:
    """A new sandbox's config, and the adoption request sent to a warm-pool member if one
    is ready (sandbox/warm.py: no asyncio or pydantic yet); None for an existing sandbox."""
    from sandkit.sandbox import warm

    store = Store()
    existing = existing_sandbox(store, args)
    if existing is not None:
        refuse_undeclared_verb(args, existing.config())
        return None
    config, workspace = sandbox_config(args)
    refuse_undeclared_verb(args, config)
    if workspace is not None and not workspace.is_dir():
        return config, workspace, None  # create_or_adopt says so
    return config, workspace, warm.send(store, config)


async def cmd_run(
    args: argparse.Namespace,
    extra: list[str],
    early: tuple[Config, Path | None, Claim | None] | None = None,
) -> int:
    from sandkit.sandbox import pool

    store = Store()
    refill = False
    session = session_request(args)
    existing = existing_sandbox(store, args) if early is None else None
    if existing is not None:
        sandbox, config = existing, existing.config()
    else:
        if early is None:
            early = (*sandbox_config(args), None)
            refuse_undeclared_verb(args, early[0])
        config, workspace, sent = early
        sandbox, _ = await pool.create_or_adopt(store, config, workspace, sent)
        refill = pool.pool_size() > 0  # so that the next new sandbox starts warm
    await start_showing_progress(sandbox)
    if refill:
        pool.refill_after(sandbox, config)
    if session is not None:
        return await _run_verb(sandbox, config, session, extra)
    if not _interactive():
        return await _run_piped(sandbox, config, extra)
    from sandkit.cli import sessions

    return await sessions.agent(sandbox, extra, cwd=config.workspace, timeout=config.ask_timeout)


async def _run_piped(sandbox: Sandbox, config: Config, extra: list[str]) -> int:
    """No terminal (a script, a pipe): the agent bound to this client, as `exec` is."""
    from sandkit.cli.attach import run_exec
    from sandkit.sandbox import lifecycle

    async with await lifecycle.connect(sandbox) as client:
        reply = await client.agent_argv(extra, False)
        remote = await client.exec(reply.argv, cwd=config.workspace, user="agent", stdin=True)
        return await run_exec(remote, fd=sys.stdin.fileno(), pty=False, stdin=True)


async def _run_verb(
    sandbox: Sandbox, config: Config, session: SessionRequest, extra: list[str]
) -> int:
    """A session verb runs as its own agent process, bound to this client (as `exec` is),
    with a terminal when this command has one."""
    from sandkit.cli.attach import run_exec
    from sandkit.cli.terminal import terminal_size
    from sandkit.sandbox import lifecycle

    tty = _interactive()
    rows, cols = terminal_size()
    env = {"TERM": os.environ["TERM"]} if tty and "TERM" in os.environ else {}
    async with await lifecycle.connect(sandbox) as client:
        argv = (
            await client.agent_argv(
                extra, tty, session.verb.value, session.prompt, session.session_id
            )
        ).argv
        remote = await client.exec(
            argv, env=env, cwd=config.workspace, user="agent", pty=tty, rows=rows, cols=cols,
            stdin=True,
        )  # fmt: skip
        return await run_exec(remote, fd=sys.stdin.fileno(), pty=tty, stdin=True)
