"""The `sandkit` command. Thin: parse arguments, call a feature package, print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from sandkit import __version__
from sandkit.cli.options import Formatter, add_kit_arg_option
from sandkit.errors import SandkitError

DESCRIPTION = """\
Run AI coding agents in QEMU microVMs, with sbx-compatible kits.

A kit (a folder with spec.yaml, or a .zip of one) packages what an agent needs:
tools, environment, files, network rules, credentials, startup commands and
instructions. One agent kit plus any number of mixins make a sandbox."""

EPILOG = """\
examples:
  sandkit run shell .                       an isolated shell on this folder, in a microVM
  sandkit run shell . -- uname -r           a command instead of the agent
  sandkit ls                                sandboxes and their state
  sandkit exec -it shell-proj -- bash       another terminal in a running sandbox
  sandkit attach shell-proj                 back to the agent (Ctrl-\\ Ctrl-\\ detaches)
  sandkit exec -d shell-proj -- make watch  a session that outlives this command
  sandkit sessions shell-proj; sandkit logs -f shell-proj 1
  sandkit stop shell-proj; sandkit rm shell-proj
  sandkit kit validate ./my-kit/            check a kit; errors name file:line:col
  sandkit kit inspect --resolved claude --kit ./kits/python-dev
                                            the merged result of an agent and mixins
  sandkit kit schema > kit.schema.json      JSON Schema for YAML editors
  sandkit kit migrate old-kit/spec.yaml     a schemaVersion 1 kit printed as v2
  sandkit proxy serve --kit github          the egress proxy alone, to try a policy with curl
  sandkit policy check --kit github api.github.com
  sandkit policy log                        blocked and allowed requests
  echo "$TOKEN" | sandkit secret set github store a credential for the proxy to inject

Run `sandkit COMMAND --help` for the options of each command."""


SESSION_COMMANDS = ("attach", "sessions", "logs")
SANDBOX_COMMANDS = ("run", "create", "start", "exec", "ls", "stop", "rm")

# The verb groups' modules (in the help's order) and the commands each adds. A command's
# parser needs only its own module: `sandkit exec` does not import the others' dependencies
# (the pool, the proxy, asyncio: tests/unit/cli/test_exec_imports.py).
VERB_MODULES: dict[str, tuple[str, ...]] = {
    "sandbox": SANDBOX_COMMANDS,
    "sync": ("sync", "undo"),
    "sessions": SESSION_COMMANDS,
    "reset": ("reset",),
    "ports": ("ports",),
    "pool": ("pool",),
    "image": ("image",),
    "net": ("proxy", "policy"),
    "secret": ("secret",),
    "login": ("login",),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (``command``) one with only what that command needs besides
    the commands written here."""
    parser = argparse.ArgumentParser(
        prog="sandkit", description=DESCRIPTION, epilog=EPILOG, formatter_class=Formatter
    )
    parser.add_argument("--version", action="version", version=f"sandkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    kit = commands.add_parser(
        "kit",
        help="validate, inspect, migrate kits; print the kit schema",
        description="Work with kits: folders with spec.yaml, or .zip files.",
        formatter_class=Formatter,
    )
    verbs = kit.add_subparsers(dest="verb", metavar="VERB", required=True)

    validate = verbs.add_parser(
        "validate",
        help="check kits; print file:line:col for each problem",
        description="Validate kits. Prints each problem as FILE:LINE:COL: error|warning: MESSAGE.\n"
        "Exits 0 when every kit is valid (warnings allowed), 1 when any is invalid, 3 when all "
        "are valid but some need capabilities (or kind: set) that sandkit does not implement "
        "yet, which it names.",
        formatter_class=Formatter,
    )
    validate.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="kit directory, its spec.yaml, a .zip, or a built-in kit name",
    )
    add_kit_arg_option(validate)
    validate.add_argument("--json", action="store_true", help="print results as JSON")

    inspect = verbs.add_parser(
        "inspect",
        help="print a kit, or an agent with mixins merged (--resolved)",
        description="Print a kit in sandkit's canonical form (YAML, or JSON with --json).\n"
        "With --resolved, compose AGENT with each --kit mixin, in order, by sbx's merge\n"
        "rules, and print what the sandbox would run.",
        epilog="example:\n  sandkit kit inspect --resolved claude --kit ./kits/github --kit-arg x=y",
        formatter_class=Formatter,
    )
    inspect.add_argument(
        "target",
        metavar="AGENT_OR_PATH",
        help="built-in agent name (shell, claude, codex) or kit path",
    )
    inspect.add_argument(
        "--kit",
        action="append",
        default=[],
        metavar="PATH",
        help="a mixin to add (repeatable; merged in order); needs --resolved",
    )
    add_kit_arg_option(inspect)
    inspect.add_argument(
        "--resolved", action="store_true", help="compose and print the merged result"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of YAML")

    verbs.add_parser(
        "schema",
        help="print the JSON Schema of the kit format",
        description="Print a JSON Schema of spec.yaml (schemaVersion 1, 2 and 3), e.g. for\n"
        "the YAML language server's yaml.schemas setting.",
        formatter_class=Formatter,
    )

    migrate = verbs.add_parser(
        "migrate",
        help="print a schemaVersion 1 kit as schemaVersion 2",
        description="Print a v1 kit rewritten as v2. The file is not changed;\n"
        "redirect the output to write it.",
        formatter_class=Formatter,
    )
    migrate.add_argument("path", metavar="PATH", help="kit directory, spec.yaml or .zip")

    verbs.add_parser("ls", help="list the built-in kits", description="List the built-in kits.")

    lsp = commands.add_parser(
        "lsp",
        help="run the language server (for editors; speaks LSP on stdio)",
        description="The language server the VS Code extension starts: kit diagnostics,\n"
        "completion and quick fixes, sandbox commands, network approvals. Speaks LSP on\n"
        "standard input and output, or on a TCP port for debugging.",
        formatter_class=Formatter,
    )
    lsp.add_argument("--stdio", action="store_true", help="use stdin/stdout (the default)")
    lsp.add_argument("--tcp", metavar="HOST:PORT", help="listen on a TCP port instead")

    trust = commands.add_parser(
        "trust",
        help="trust a workspace folder's own settings (.sandkit.yaml, kits in it)",
        description="A workspace's .sandkit.yaml and the kits inside it came with the\n"
        "repository (or from an agent, synced back). Until you trust the folder they may\n"
        "narrow its sandbox but not widen it: no default allow-all, no resolve to private\n"
        "addresses, no upstreamCa, no kits with credentials or install steps. Trusting a\n"
        "folder trusts the folders below it.",
        epilog="examples:\n  sandkit trust ~/src/my-project\n  sandkit trust --list\n"
        "  sandkit trust --remove ~/src/my-project",
        formatter_class=Formatter,
    )
    trust.add_argument("path", nargs="?", metavar="PATH", help="the folder to trust")
    trust.add_argument("--list", action="store_true", help="list trusted folders")
    trust.add_argument("--remove", action="store_true", help="stop trusting PATH")

    import importlib

    for name, names in VERB_MODULES.items():
        if command is None or command in names:
            module = importlib.import_module(f"sandkit.cli.{name}")
            module.add_parsers(commands, Formatter)
    if command in (None, "run", "create"):
        from sandkit.cli import ports

        for verb in ("run", "create"):
            ports.add_publish_option(commands.choices[verb])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` belongs to the agent or the command, never to sandkit.
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    named = argv[0] if argv and any(argv[0] in names for names in VERB_MODULES.values()) else None
    args = build_parser(named).parse_args(argv)
    try:
        return _run_verb(args, extra)
    except SandkitError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _run_verb(args: argparse.Namespace, extra: list[str]) -> int:
    """The command's own module, imported only now (the fast path of `sandkit exec`)."""
    if args.command == "kit":
        from sandkit.cli import kit

        return kit.run(args)
    if args.command == "lsp":
        from sandkit.lsp.server import run as run_lsp

        return run_lsp(args)
    if args.command == "pool":
        from sandkit.cli import pool

        return pool.run(args)
    if args.command == "image":
        from sandkit.cli import image

        return image.run(args)
    if args.command == "trust":
        return trust_command(args)
    if args.command == "ports":
        from sandkit.cli import ports

        return ports.run(args)
    if args.command == "reset":
        from sandkit.cli import reset

        return reset.run(args)
    if args.command in SESSION_COMMANDS:
        from sandkit.cli import sessions

        return sessions.run(args)
    if args.command in ("sync", "undo"):
        from sandkit.cli import sync

        return sync.run(args)
    if args.command in SANDBOX_COMMANDS:
        from sandkit.cli import sandbox

        return sandbox.run(args, extra)
    if args.command == "login":
        from sandkit.cli import login

        return login.run(args)
    if args.command == "secret":
        from sandkit.cli import secret

        return secret.run(args)
    from sandkit.cli import net

    return net.run(args)


def trust_command(args: Any) -> int:
    from pathlib import Path

    from sandkit.sandbox.trust import TrustStore

    store = TrustStore()
    if args.list or not args.path:
        for folder in store.folders():
            print(folder)
        return 0
    if args.remove:
        if not store.untrust(Path(args.path)):
            print(f"{args.path} was not trusted", file=sys.stderr)
            return 1
        print(f"no longer trusted: {Path(args.path).resolve()}")
        return 0
    try:
        print(f"trusted: {store.trust(Path(args.path))}")
    except FileNotFoundError as exc:
        raise SandkitError(str(exc)) from None
    return 0
