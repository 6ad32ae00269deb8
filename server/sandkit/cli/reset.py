"""`sandkit reset`: a fresh guest disk for a sandbox, its workspace and settings kept."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sandkit.sandbox import lifecycle
from sandkit.sandbox.store import Store
from sandkit.ui import ProgressLine


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    reset_parser = commands.add_parser(
        "reset",
        formatter_class=formatter,
        help="give a sandbox a fresh guest disk (the workspace and settings are kept)",
        description="Replace the sandbox's guest disk with a fresh one from the image, as if\n"
        "the sandbox were new: everything installed or changed in the guest outside the\n"
        "workspace is gone, and the kits are applied again. Kept: the workspace and its\n"
        "sync state, the sandbox's settings, network approvals and published ports. A\n"
        "running sandbox is stopped and started again. For a guest that no longer works\n"
        "(e.g. after `sudo rm -rf --no-preserve-root /` in it).",
        epilog="example:\n  sandkit reset my-box",
    )
    reset_parser.add_argument("name", metavar="NAME")
    reset_parser.add_argument(
        "-f", "--force", action="store_true", help="do not ask for confirmation"
    )


def run(args: argparse.Namespace) -> int:
    return asyncio.run(cmd_reset(args))


async def cmd_reset(args: argparse.Namespace) -> int:
    sandbox = Store().get(args.name)
    if not args.force and sys.stdin.isatty():
        answer = input(
            f"reset '{sandbox.name}'? Its guest disk is replaced: what was installed or changed "
            "outside the workspace is lost [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("not reset", file=sys.stderr)
            return 1
    line = ProgressLine(sandbox.name)
    try:
        restarted = await lifecycle.reset(
            sandbox, progress=ProgressLine("guest image").step, waiting=lambda s: line.spin(s)
        )
    finally:
        line.clear()
    print(f"{sandbox.name}: a fresh guest disk" + (", started" if restarted else ""))
    if restarted:  # e.g. the wipe's deletions in the workspace, held before the reset
        async with await lifecycle.connect(sandbox) as client:
            held = (await client.sync_status()).held
        if held:
            print(
                f"{len(held)} change(s) the old guest made in the workspace are held: "
                f"`sandkit sync reject {sandbox.name}` puts the host's versions back in the "
                f"sandbox, `sandkit sync pending {sandbox.name}` lists them",
                file=sys.stderr,
            )
    return 0
