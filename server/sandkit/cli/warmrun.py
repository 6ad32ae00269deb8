"""`sandkit run` without a terminal, once warm.send has sent a warm-pool member its
adoption: the answer awaited and the agent (or the command) run over blocking sockets,
as `sandkit exec` runs one (cli/execute.py), without importing asyncio, pydantic or the
client. On 2 cores the guest, the member's supervisor and this command share the CPU:
the ~80 ms of imports that the general path does while the member adopts slowed the
adoption down by about as much. Anything else (no claim, a terminal, a refusal or a
lost member) is left to cmd_run, which finds the claim's answer kept (warm.Claim)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sandkit.cli import execute
from sandkit.cli.terminal import terminal_size
from sandkit.rpc import ConnectionLost
from sandkit.sandbox import warm
from sandkit.sandbox.store import Config, Sandbox, SandboxError, Store
from sandkit.sandbox.wire import ExecRequest, SupervisorError


def run_adopted(
    args: argparse.Namespace,
    extra: list[str],
    early: tuple[Config, Path | None, warm.Claim | None] | None,
) -> int | None:
    """The exit status of the agent or command in the adopted member; None when cmd_run
    must do it (then nothing has been started here)."""
    if early is None or (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    config, _, claim = early
    if claim is None:
        return None
    try:
        claim.wait()
    except (SupervisorError, ConnectionLost):
        return None  # pool.create_or_adopt reads the same answer and goes on from it
    sandbox = Sandbox(Store().root, config.name)
    call = execute.OneShotExec.connect(sandbox.control)
    try:
        # The supervisor's one rule for what runs (sandbox/agent_command.py).
        reply = call.ask("agent-argv", {"extra": extra, "interactive": False, **verb(args)})
    except BaseException:
        call.close()
        raise
    rows, cols = terminal_size()
    request: ExecRequest = {
        "argv": argv_of(reply),
        "env": {},
        "cwd": config.workspace,
        "user": "agent",
        "pty": False,
        "rows": rows,
        "cols": cols,
        "stdin": True,
    }

    def refill() -> None:  # once the program runs: its start goes first
        warm.refill_after(sandbox, config)

    return execute.run(call, request, fd=sys.stdin.fileno(), started=refill)


def verb(args: argparse.Namespace) -> dict[str, str]:
    """`--prompt`, `--continue` or `--resume` as agent-argv's parameters (protocol.py
    AgentArgvParams), without the kit engine's Verb."""
    if getattr(args, "prompt", None) is not None:
        return {"verb": "prompt", "prompt": args.prompt}
    if getattr(args, "continue_session", False):
        return {"verb": "continue"}
    if getattr(args, "resume", None) is not None:
        return {"verb": "resume", "session_id": args.resume}
    return {}


def argv_of(result: Any) -> list[str]:
    argv = result.get("argv") if isinstance(result, dict) else None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise SandboxError("the sandbox's supervisor sent no command to run")
    return argv
