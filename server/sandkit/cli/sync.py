"""`sandkit sync|undo`: held changes and the trash of host files that sync replaced."""

from __future__ import annotations

import argparse
import asyncio
import json


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
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


def run(args: argparse.Namespace) -> int:
    handler = {"sync": cmd_sync, "undo": cmd_undo}[args.command]
    return asyncio.run(handler(args, []))


async def cmd_sync(args: argparse.Namespace, extra: list[str]) -> int:
    from sandkit.sandbox import lifecycle
    from sandkit.sandbox.store import Store
    from sandkit.ui import table

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
    from sandkit.sandbox.store import Store
    from sandkit.ui import table

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


# -- reset ---------------------------------------------------------------------------------
