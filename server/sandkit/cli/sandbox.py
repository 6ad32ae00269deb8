"""`sandkit run|create|start|exec|ls|stop|rm`: sandboxes from the terminal (verbs as sbx)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import sys
import termios
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandkit.cli.options import add_kit_arg_option
from sandkit.cli.prompt import ApprovalPrompt
from sandkit.rpc import exit_status
from sandkit.sandbox import lifecycle
from sandkit.sandbox.client import RemoteExec, SupervisorClient
from sandkit.sandbox.protocol import ExitEvent
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Config, Sandbox, SandboxError, Store, check_name
from sandkit.tasks import spawn
from sandkit.ui import ProgressLine, since, table


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    def sandbox_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "agent", metavar="AGENT", help="agent kit: shell, claude, codex, or a kit path"
        )
        p.add_argument(
            "path",
            nargs="?",
            type=Path,
            metavar="PATH",
            help="workspace folder, seen in the sandbox at the same absolute path",
        )
        p.add_argument("--name", help="sandbox name (default: AGENT-FOLDER)")
        p.add_argument(
            "--kit", action="append", default=[], metavar="PATH", help="mixin kit (repeatable)"
        )
        add_kit_arg_option(p)
        p.add_argument("--cpus", type=int, default=2, help="virtual CPUs (default 2)")
        p.add_argument("--memory", default="1g", metavar="SIZE", help="guest memory (default 1g)")
        p.add_argument(
            "--default",
            choices=["allow-all", "balanced", "deny-all"],
            default="balanced",
            help="network policy for hosts no kit names (default balanced)",
        )
        p.add_argument(
            "--resolve",
            action="append",
            default=[],
            metavar="HOST=IP",
            help="pin HOST to IP for the proxy (e.g. a service on this machine)",
        )
        p.add_argument(
            "--ask-timeout",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="how long a request no rule covers waits for your answer before it is denied "
            "(default 60); asked in the terminal running the agent",
        )
        p.add_argument(
            "--no-host-cas",
            dest="host_cas",
            action="store_false",
            help="do not trust, in the guest, the CAs added to this machine's trust store "
            "(/usr/local/share/ca-certificates)",
        )
        p.add_argument(
            "--upstream-ca",
            type=Path,
            metavar="FILE",
            help="extra CA for upstream TLS (a corporate inspection CA); trusted in the guest too",
        )

    run = commands.add_parser(
        "run",
        formatter_class=formatter,
        help="run an agent in a sandbox (created if missing)",
        description="Create the sandbox if needed, start it, and run the agent attached to this\n"
        "terminal. The exit status is the agent's. After --, a leading flag is added to the\n"
        "agent's command line; a bare word replaces it.",
        epilog="examples:\n  sandkit run shell .\n  sandkit run shell ~/proj -- uname -r\n"
        "  sandkit run claude . --kit python-dev -- --model opus",
    )
    sandbox_options(run)
    create = commands.add_parser(
        "create",
        formatter_class=formatter,
        help="create a sandbox without starting it",
        description="Create a sandbox for AGENT with a copy of PATH.",
    )
    sandbox_options(create)
    start = commands.add_parser("start", help="start a stopped sandbox")
    start.add_argument("names", nargs="+", metavar="NAME")
    ex = commands.add_parser(
        "exec",
        formatter_class=formatter,
        help="run a command in a sandbox",
        description="Run CMD in sandbox NAME (started first if it is stopped).",
        epilog="example:\n  sandkit exec -it my-box -- bash",
    )
    ex.add_argument("-i", "--interactive", action="store_true", help="pass standard input")
    ex.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    ex.add_argument("-u", "--user", default="agent", help="user name or uid (default agent)")
    ex.add_argument("-w", "--workdir", help="working directory (default: the workspace)")
    ex.add_argument(
        "-e", "--env", action="append", default=[], metavar="K=V", help="environment variable"
    )
    ex.add_argument("name", metavar="NAME")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    ls = commands.add_parser("ls", help="list sandboxes")
    ls.add_argument("--json", action="store_true", help="print JSON")
    stop = commands.add_parser("stop", help="stop sandboxes (their disks are kept)")
    stop.add_argument("names", nargs="+", metavar="NAME")
    sync = commands.add_parser(
        "sync",
        formatter_class=formatter,
        help="answer held changes (mass deletions, files the host runs); show sync state",
        description="Some changes made in a sandbox wait for a person before they reach the host:\n"
        "a burst of deletions or emptied files, and any change to a file the host runs (git\n"
        "hooks and config, .vscode/, .envrc, shell rc files, .sandkit.yaml, ...).\n\n"
        "  pending   list what is held, with a diff for edited files (--json for scripts)\n"
        "  approve   let it through: the host's version goes to the trash (`sandkit undo`)\n"
        "  reject    put the host's version back in the sandbox\n"
        "  status    the sync state as JSON\n\n"
        "Add or remove protected paths in ~/.config/sandkit/protected (gitignore syntax;\n"
        "'!pattern' removes a default). A workspace cannot change that list.",
    )
    sync.add_argument("verb", choices=["pending", "approve", "reject", "status"])
    sync.add_argument("name", metavar="NAME")
    sync.add_argument("--json", action="store_true", help="pending: print JSON")
    undo = commands.add_parser(
        "undo",
        formatter_class=formatter,
        help="restore host files that sync overwrote or deleted",
        description="Every host file that sync overwrites or deletes goes to the sandbox's trash\n"
        "first. Restore PATHs (the newest version of each), or list what is there.",
    )
    undo.add_argument("name", metavar="NAME")
    undo.add_argument(
        "paths", nargs="*", metavar="PATH", help="workspace-relative paths to restore"
    )
    undo.add_argument("--list", action="store_true", help="list the trash")
    undo.add_argument(
        "--last",
        action="store_true",
        help="restore everything the last sync step trashed (e.g. an approved mass deletion)",
    )
    rm = commands.add_parser("rm", help="remove sandboxes and everything they stored")
    rm.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="kill without a graceful stop; a name that does not exist is no error",
    )
    rm.add_argument(
        "--all",
        action="store_true",
        help="remove every sandbox that `ls` lists (warm-pool members: `sandkit pool drain`)",
    )
    rm.add_argument("names", nargs="*", metavar="NAME")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    handler = {
        "run": cmd_run,
        "create": cmd_create,
        "start": cmd_start,
        "exec": cmd_exec,
        "ls": cmd_ls,
        "stop": cmd_stop,
        "rm": cmd_rm,
        "sync": cmd_sync,
        "undo": cmd_undo,
    }[args.command]
    return asyncio.run(handler(args, extra))


def _config(args: argparse.Namespace) -> tuple[Config, Path | None]:
    from sandkit.sandbox.request import SandboxRequest, build

    config = build(
        SandboxRequest(
            agent=args.agent,
            kits=list(args.kit),
            kit_args=dict(args.kit_arg),
            workspace=args.path,
            name=args.name,
            cpus=args.cpus,
            memory=args.memory,
            default_policy=args.default,
            resolve=list(args.resolve),
            upstream_ca=args.upstream_ca,
            ask_timeout=args.ask_timeout,
            host_cas=args.host_cas,
        )
    )
    return config, Path(config.workspace) if config.workspace else None


async def _started(sandbox: Sandbox) -> None:
    line = ProgressLine(sandbox.name)
    try:
        await lifecycle.start(
            sandbox, progress=ProgressLine("guest image").step, waiting=lambda s: line.spin(s)
        )
    finally:
        line.clear()


async def cmd_create(args: argparse.Namespace, extra: list[str]) -> int:
    config, workspace = _config(args)
    sandbox, adopted = await lifecycle.create_or_adopt(Store(), config, workspace)
    if adopted:
        lifecycle.refill_after(sandbox, config)
    print(sandbox.name)
    return 0


async def cmd_start(args: argparse.Namespace, extra: list[str]) -> int:
    store = Store()
    for name in args.names:
        await _started(store.get(name))
    return 0


async def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    config, workspace = _config(args)
    store = Store()
    sandbox = Sandbox(store.root, config.name)
    refill = False
    if not sandbox.exists():
        sandbox, _ = await lifecycle.create_or_adopt(store, config, workspace)
        refill = lifecycle.pool_size() > 0  # so that the next new sandbox starts warm
    else:
        config = sandbox.config()
    await _started(sandbox)
    if refill:
        lifecycle.refill_after(sandbox, config)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    # The supervisor has the composed kits (and the guest's environment): ask it.
    async with await lifecycle.connect(sandbox) as client:
        reply = await client.agent_argv(extra, interactive)
    return await attach(
        sandbox,
        reply.argv,
        user="agent",
        cwd=config.workspace,
        env={},
        pty=interactive,
        stdin=True,
        ask=interactive,
        ask_timeout=config.ask_timeout,
    )


async def cmd_exec(args: argparse.Namespace, extra: list[str]) -> int:
    cmd = [*args.cmd, *extra]
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise SandboxError("nothing to run: sandkit exec NAME -- CMD ...")
    sandbox = Store().get(args.name)
    await _started(sandbox)
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        env[key] = value if sep else os.environ.get(key, "")
    config = sandbox.config()
    return await attach(
        sandbox,
        cmd,
        user=args.user,
        cwd=args.workdir or config.workspace,
        env=env,
        pty=args.tty,
        stdin=args.interactive,
    )


async def attach(
    sandbox: Sandbox,
    argv: list[str],
    *,
    user: str,
    cwd: str | None,
    env: dict[str, str],
    pty: bool,
    stdin: bool,
    ask: bool = False,
    ask_timeout: float = 60.0,
) -> int:
    """Run argv in the sandbox wired to this terminal; returns its exit status. With
    ``ask``, requests no rule covers are asked about here (see cli/prompt.py)."""
    async with contextlib.AsyncExitStack() as connections:
        client = await connections.enter_async_context(await lifecycle.connect(sandbox))
        prompt: ApprovalPrompt | None = None
        if ask:  # on a connection of its own: its events never wait behind the output
            asking = await connections.enter_async_context(await lifecycle.connect(sandbox))
            prompt = ApprovalPrompt(asking, sys.stderr.buffer, ask_timeout, sandbox.name)
        return await _attached(client, prompt, argv, user, cwd, env, pty, stdin)


async def _attached(
    client: SupervisorClient,
    prompt: ApprovalPrompt | None,
    argv: list[str],
    user: str,
    cwd: str | None,
    env: dict[str, str],
    pty: bool,
    stdin: bool,
) -> int:
    size = shutil.get_terminal_size()
    if pty and "TERM" in os.environ:
        env.setdefault("TERM", os.environ["TERM"])
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    pump: asyncio.Task[None] | None = None
    saved = None
    watcher = spawn(prompt.run(), "approval-prompt") if prompt is not None else None
    try:
        remote = await client.exec(
            argv,
            env=env,
            cwd=cwd,
            user=user,
            pty=pty,
            rows=size.lines,
            cols=size.columns,
            stdin=stdin,
        )
        saved = termios.tcgetattr(fd) if pty and os.isatty(fd) else None
        if saved is not None:
            tty.setraw(fd)  # keys (Ctrl-C included) go to the guest's terminal as bytes
            loop.add_signal_handler(signal.SIGWINCH, lambda: _resize(remote))
        else:  # no terminal: signals sent to us are passed on to the command
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, _forward_signal, remote, sig)
        if stdin:
            pump = loop.create_task(
                _pump_stdin(remote, fd, prompt.divert if prompt is not None else None)
            )
        return await _drain(remote)
    finally:
        if pump is not None:
            pump.cancel()
        if watcher is not None:
            watcher.cancel()
        if saved is not None:
            loop.remove_signal_handler(signal.SIGWINCH)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        else:  # (none were added if the exec failed: removing is a no-op)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)


def _forward_signal(remote: RemoteExec, sig: int) -> None:
    spawn(remote.signal(sig), f"signal-{sig}")


def _resize(remote: RemoteExec) -> None:
    size = shutil.get_terminal_size()
    spawn(remote.resize(size.lines, size.columns), "resize")


async def _pump_stdin(
    remote: RemoteExec, fd: int, divert: Callable[[bytes], bytes] | None = None
) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        queue.put_nowait(data)
        if not data:
            loop.remove_reader(fd)

    try:
        loop.add_reader(fd, readable)
    except (PermissionError, ValueError):  # a regular file as stdin: not pollable
        os.set_blocking(fd, True)
        data = await asyncio.to_thread(sys.stdin.buffer.read)
        await remote.stdin(data, eof=True)
        return
    try:
        while True:
            data = await queue.get()
            if divert is not None and data:
                data = divert(data)
                if not data:
                    continue
            await remote.stdin(data, eof=not data)
            if not data:
                return
    finally:
        with contextlib.suppress(ValueError):
            loop.remove_reader(fd)
        os.set_blocking(fd, True)


async def _drain(remote: RemoteExec) -> int:
    """Output to this terminal until the exit; ConnectionLost (a SandkitError) if the
    supervisor goes away first."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    while True:
        event = await remote.next()
        if isinstance(event, ExitEvent):
            return exit_status(event.code, event.signal)
        stream = out if event.stream == "stdout" else err
        stream.write(base64.b64decode(event.data))
        stream.flush()


async def cmd_ls(args: argparse.Namespace, extra: list[str]) -> int:
    rows: list[dict[str, Any]] = []
    for sandbox in Store().all():
        if lifecycle.is_pool_member(sandbox):
            continue  # `sandkit pool status` lists them
        config, state = sandbox.config(), sandbox.state()
        rows.append(
            {
                "name": config.name,
                "agent": config.agent,
                "state": state.state,
                "workspace": config.workspace,
                "kits": config.kits,
                "sync": state.sync if state.state == SandboxState.RUNNING else None,
                "uptime": since(state.started) if state.state == SandboxState.RUNNING else "-",
                "error": state.error,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        table(
            [
                (
                    r["name"],
                    r["agent"],
                    r["state"],
                    r["sync"] or "-",
                    r["workspace"] or "-",
                    r["uptime"],
                )
                for r in rows
            ],
            ("NAME", "AGENT", "STATE", "SYNC", "WORKSPACE", "UPTIME"),
        )
    )
    return 0


async def cmd_stop(args: argparse.Namespace, extra: list[str]) -> int:
    store = Store()
    for name in args.names:
        await lifecycle.stop(store.get(name))
    return 0


async def cmd_rm(args: argparse.Namespace, extra: list[str]) -> int:
    store = Store()
    if args.all:  # what `ls` lists: the warm pool's members are `pool drain`'s
        targets = [s for s in store.all() if not lifecycle.is_pool_member(s)]
    else:  # like rm -f: with --force a name that is not there is no error
        targets = [
            store.get(n)
            for n in args.names
            if not args.force or Sandbox(store.root, check_name(n)).exists()
        ]
    if not targets and not args.all:
        raise SandboxError("name a sandbox to remove, or use --all")
    for sandbox in targets:
        await lifecycle.remove(store, sandbox, force=args.force)
    return 0


async def cmd_sync(args: argparse.Namespace, extra: list[str]) -> int:
    sandbox = Store().get(args.name)
    async with await lifecycle.connect(sandbox) as client:
        if args.verb in ("status", "pending"):
            result = (await client.sync_status()).model_dump(mode="json")
        elif args.verb == "approve":
            result = (await client.sync_approve()).model_dump(mode="json")
        else:
            result = (await client.sync_reject()).model_dump(mode="json")
    if args.verb == "status":
        print(json.dumps(result, indent=2))
    elif args.verb == "pending":
        details = result.get("details", [])
        if args.json:
            print(json.dumps(details, indent=2))
        elif not details:
            print(f"nothing held in '{args.name}'")
        else:
            print(table([(d["path"], d["why"]) for d in details], ("PATH", "WHY")))
            for d in details:
                if d.get("diff"):
                    print(f"\n{d['diff'].rstrip()}")
            print(
                f"\nanswer with `sandkit sync approve {args.name}` (the sandbox's version "
                f"reaches the host) or `sandkit sync reject {args.name}` (the host's goes back)"
            )
    else:
        done = (
            "applied on the host (its old versions are in the trash)"
            if args.verb == "approve"
            else "put back in the sandbox"
        )
        print(f"{result['count']} held path(s) {done}")
    return 0


async def cmd_undo(args: argparse.Namespace, extra: list[str]) -> int:
    from sandkit.sandbox import undo

    sandbox = Store().get(args.name)
    entries = undo.trash(sandbox)
    wanted = [*args.paths, *(undo.last_batch(entries) if args.last else [])]
    if args.list or not wanted:
        print(
            table(
                [(str(i), stamp, path, reason) for i, stamp, path, _, reason in entries],
                ("ID", "WHEN", "PATH", "WHY"),
            )
        )
        return 0
    for rel, when in undo.restore(sandbox, entries, wanted):
        print(f"restored {rel} (from {when})")
    return 0
