"""`sandkit run|create|start|exec|ls|stop|rm`: sandboxes from the terminal (verbs as sbx)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandkit.cli.options import add_kit_arg_option, add_shape_options
from sandkit.cli.output import start_showing_progress

# Light at the module level (`exec` answers in tens of milliseconds, tests/unit/cli/
# test_exec_imports.py): asyncio, lifecycle and the pool are imported by the verbs.
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Sandbox, SandboxError, Store, check_name

if TYPE_CHECKING:
    from sandkit.sandbox.store import Config
    from sandkit.sandbox.wire import ExecRequest


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
        add_shape_options(p)
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
        "terminal. The agent runs as the sandbox's session `agent`: closing the terminal or\n"
        "detaching (Ctrl-\\ Ctrl-\\) leaves it running, and `sandkit run` or `sandkit attach`\n"
        "again shows its recent screen and goes on. The exit status is the agent's. Requests\n"
        "no rule covers are asked about here: answer with Ctrl-\\ then o (allow once), a\n"
        "(allow for this sandbox) or n (deny); every other key goes to the agent. Without a\n"
        "terminal (a pipe, a script) the agent is bound to this command instead.\n\n"
        "After --, a leading flag is added to the agent's command line; a bare word replaces\n"
        "it (when the agent is not running yet).\n\n"
        "--prompt, --continue and --resume run the agent kit's session verb instead, as a\n"
        "new agent process bound to this command (an error if the kit declares none).",
        epilog="examples:\n  sandkit run shell .\n  sandkit run shell ~/proj -- uname -r\n"
        "  sandkit run claude . --kit python-dev -- --model opus\n"
        "  sandkit run ./my-v3-kit . --prompt 'fix the failing test'",
    )
    sandbox_options(run)
    from sandkit.cli.run import add_session_options  # it imports this module

    add_session_options(run)
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
        help="run a command in a sandbox (-d: as a session that outlives this command)",
        description="Run CMD in sandbox NAME (started first if it is stopped), bound to this\n"
        "command as `docker exec` is: it ends when this command does. With -d it runs as a\n"
        "session the sandbox owns instead: its name is printed, and `sandkit attach NAME\n"
        "SESSION`, `sandkit logs NAME SESSION -f` and `sandkit sessions NAME` reach it.",
        epilog="examples:\n  sandkit exec -it my-box -- bash\n"
        "  sandkit exec -d my-box -- npm run dev      (prints the session's name, e.g. 1)\n"
        "  sandkit logs -f my-box 1",
    )
    ex.add_argument(
        "-d", "--detach", action="store_true", help="run as a session and print its name"
    )
    ex.add_argument(
        "--session", metavar="SESSION", help="with -d: the session's name (default: a number)"
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
    if args.command == "exec":
        return cmd_exec(args, extra)  # no event loop unless it must start the sandbox
    if args.command == "run":
        # A warm-pool member is asked for its adoption before the imports below, which
        # then overlap it.
        from sandkit.cli import run as run_verb

        early = run_verb.send_adoption(args)
        from sandkit.cli import warmrun

        status = warmrun.run_adopted(args, extra, early)
        if status is not None:
            return status
        import asyncio

        return asyncio.run(run_verb.cmd_run(args, extra, early))
    import asyncio

    handler = {
        "create": cmd_create,
        "start": cmd_start,
        "ls": cmd_ls,
        "stop": cmd_stop,
        "rm": cmd_rm,
    }[args.command]
    return asyncio.run(handler(args, extra))


def sandbox_config(args: argparse.Namespace) -> tuple[Config, Path | None]:
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
            disk=args.disk,
            docker=args.docker,
            default_policy=args.default,
            resolve=list(args.resolve),
            upstream_ca=args.upstream_ca,
            ask_timeout=args.ask_timeout,
            host_cas=args.host_cas,
            ports=list(getattr(args, "publish", [])),  # -p, added by cli/ports.py
        )
    )
    return config, Path(config.workspace) if config.workspace else None


async def cmd_create(args: argparse.Namespace, extra: list[str]) -> int:
    from sandkit.sandbox import pool

    config, workspace = sandbox_config(args)
    sandbox, adopted = await pool.create_or_adopt(Store(), config, workspace)
    if adopted:
        pool.refill_after(sandbox, config)
    print(sandbox.name)
    return 0


async def cmd_start(args: argparse.Namespace, extra: list[str]) -> int:
    store = Store()
    for name in args.names:
        await start_showing_progress(store.get(name))
    return 0


def existing_sandbox(store: Store, args: argparse.Namespace) -> Sandbox | None:
    """The sandbox `run` names, if it exists: found without resolving any kit (a re-run
    should not pay for the kit engine)."""
    from sandkit.sandbox.request import kit_ref
    from sandkit.sandbox.store import default_name

    if args.name:
        name = check_name(args.name)
    elif str(args.agent).startswith("git+"):
        return None  # its name comes from the pinned reference: build() knows it
    else:
        workspace = args.path.resolve() if args.path is not None else None
        name = default_name(kit_ref(args.agent), workspace)
    sandbox = Sandbox(store.root, name)
    return sandbox if sandbox.exists() else None


def cmd_exec(args: argparse.Namespace, extra: list[str]) -> int:
    """Blocking, without asyncio or pydantic (cli/execute.py), unless the sandbox must be
    started first or the command runs detached, as a session."""
    from sandkit.cli.terminal import terminal_size
    from sandkit.pids import alive

    cmd = [*args.cmd, *extra]
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise SandboxError("nothing to run: sandkit exec NAME -- CMD ...")
    sandbox = Store().get(args.name)
    state = sandbox.state()  # lifecycle.start's own test for "runs already"
    if state.state not in (SandboxState.RUNNING, SandboxState.POOLED) or not alive(
        state.supervisor_pid
    ):
        import asyncio

        asyncio.run(start_showing_progress(sandbox))
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        env[key] = value if sep else os.environ.get(key, "")
    if args.tty and "TERM" in os.environ:
        env.setdefault("TERM", os.environ["TERM"])
    cwd = args.workdir or sandbox.config().workspace
    rows, cols = terminal_size()
    if args.detach:  # owned by the supervisor: it outlives this command
        import asyncio

        return asyncio.run(_exec_detached(sandbox, args, cmd, env, cwd, (rows, cols)))
    from sandkit.cli import execute

    request: ExecRequest = {
        "argv": cmd,
        "env": env,
        "cwd": cwd,
        "user": args.user,
        "pty": args.tty,
        "rows": rows,
        "cols": cols,
        "stdin": args.interactive,
    }
    call = execute.OneShotExec.connect(sandbox.control)
    return execute.run(call, request, fd=sys.stdin.fileno())


async def _exec_detached(
    sandbox: Sandbox,
    args: argparse.Namespace,
    cmd: list[str],
    env: dict[str, str],
    cwd: str | None,
    size: tuple[int, int],
) -> int:
    from sandkit.sandbox import lifecycle

    async with await lifecycle.connect(sandbox) as client:
        session = await client.start_session(
            cmd,
            name=args.session,
            env=env,
            cwd=cwd,
            user=args.user,
            pty=args.tty,
            rows=size[0],
            cols=size[1],
            attach=False,
        )
    print(session.name)
    return 0


async def cmd_ls(args: argparse.Namespace, extra: list[str]) -> int:
    from sandkit.cli.ports import published_now, short
    from sandkit.sandbox import lifecycle, pool
    from sandkit.sandbox.protocol import Identity
    from sandkit.ui import since, table

    rows: list[dict[str, Any]] = []
    # `sandkit pool status` lists the warm pool's members.
    sandboxes = [s for s in Store().all() if not lifecycle.is_pool_member(s)]
    ports, mine = await published_now(sandboxes), Identity.local()
    for sandbox in sandboxes:
        config, state = sandbox.config(), sandbox.state()
        rows.append(
            {
                "name": config.name,
                "agent": config.agent,
                "state": state.state,
                "workspace": config.workspace,
                "kits": config.kits,
                "cpus": config.cpus,
                "memory_mib": config.memory_mib,
                "disk_mib": config.disk_mib,
                "sync": state.sync if state.state == SandboxState.RUNNING else None,
                "uptime": since(state.started) if state.state == SandboxState.RUNNING else "-",
                "error": state.error,
                "ports": [x.as_dict() for x in ports[sandbox.name]],
                # The supervisor's sandkit, when another than this one runs it.
                "other_sandkit": pool.other_sandkit(state, mine) or None,
                "sandkit": state.sandkit,
                "prefix": state.prefix,
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
                    ",".join(short(x) for x in ports[r["name"]]) or "-",
                    r["other_sandkit"] or "",
                )
                for r in rows
            ],
            ("NAME", "AGENT", "STATE", "SYNC", "WORKSPACE", "UPTIME", "PORTS", "SANDKIT"),
        )
    )
    return 0


async def cmd_stop(args: argparse.Namespace, extra: list[str]) -> int:
    from sandkit.sandbox import lifecycle

    store = Store()
    for name in args.names:
        await lifecycle.stop(store.get(name))
    return 0


async def cmd_rm(args: argparse.Namespace, extra: list[str]) -> int:
    from sandkit.sandbox import lifecycle

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
