"""`sandkit pool status|fill|drain`: the warm pool of paused, pre-booted VMs that
`run` and `create` adopt instead of booting cold."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from sandkit.cli.options import add_kit_arg_option, add_shape_options
from sandkit.sandbox import lifecycle
from sandkit.sandbox import pool as warm_pool
from sandkit.sandbox.store import Store
from sandkit.ui import duration, since, table


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    pool = commands.add_parser(
        "pool",
        formatter_class=formatter,
        help="the warm pool of pre-booted VMs (instant sandboxes)",
        description="Paused VMs, restored from a golden snapshot, that `run` and `create` adopt\n"
        "instead of booting cold (about 0.2 s instead of 1-3 s under TCG). Each shape\n"
        "(CPUs, memory) keeps $SANDKIT_POOL_SIZE members (default 1; 0 turns the pool off),\n"
        "refilled in the background after each adoption. A paused member uses memory but\n"
        "no CPU. `fill --agent A --kit K` prepares members for those kits: their installs\n"
        "run once, and later members are clones of the result.",
    )
    verbs = pool.add_subparsers(dest="verb", metavar="VERB", required=True)
    status = verbs.add_parser("status", help="list the pool's members")
    status.add_argument("--json", action="store_true", help="print JSON")
    fill = verbs.add_parser("fill", help="boot members until the pool is full")
    # No --disk: members keep the default disk, and an adopter's bigger one grows at adoption.
    add_shape_options(fill, disk=False)
    fill.add_argument("--size", type=int, help="members to keep (default $SANDKIT_POOL_SIZE)")
    fill.add_argument("--quiet", action="store_true", help="print nothing")
    fill.add_argument(
        "--agent",
        metavar="AGENT",
        help="prepare the members for this agent kit (and the --kit mixins): their installs"
        " run now, once, and are kept in a snapshot that later members are cloned from",
    )
    fill.add_argument(
        "--kit", action="append", default=[], metavar="PATH", help="mixin kit (repeatable)"
    )
    add_kit_arg_option(fill)
    fill.add_argument(
        "--default",
        choices=["allow-all", "balanced", "deny-all"],
        default="balanced",
        help="policy for hosts no rule names while prepared members install (default balanced)",
    )
    drain = verbs.add_parser("drain", help="remove every member")
    drain.add_argument(
        "--golden",
        action="store_true",
        help="also delete the golden snapshots (the next fill rebuilds them, ~4 s each)",
    )


def run(args: argparse.Namespace) -> int:
    return asyncio.run({"status": status, "fill": fill, "drain": drain}[args.verb](args))


async def status(args: argparse.Namespace) -> int:
    from sandkit.vm import golden

    rows: list[dict[str, Any]] = []
    for member in warm_pool.pool_members(Store()):
        state, config = member.state(), member.config()
        rows.append(
            {
                "name": member.name,
                "shape": config.pool_shape,
                "prepared_for": (
                    " + ".join([config.agent, *config.kits]) if config.pool_prepared else None
                ),
                "state": state.state,
                "qemu_pid": state.qemu_pid,
                "age_s": round(time.time() - state.started) if state.started else None,
            }
        )
    snapshots = golden.goldens()
    if args.json:
        print(
            json.dumps(
                {"size": warm_pool.pool_size(), "members": rows, "goldens": snapshots}, indent=2
            )
        )
        return 0
    print(f"pool size per shape: {warm_pool.pool_size()} ($SANDKIT_POOL_SIZE)")
    print(
        table(
            [
                (
                    r["name"],
                    r["shape"] or "-",
                    r["state"],
                    duration(r["age_s"]),
                    r["prepared_for"] or "-",
                )
                for r in rows
            ],
            ("NAME", "SHAPE", "STATE", "AGE", "PREPARED FOR"),
        )
    )
    if snapshots:
        print("\ngolden snapshots (members are restored from these):")
        print(
            table(
                [
                    (
                        str(g["key"]),
                        str(g["shape"] or "-") + (f" + kits {g['kits']}" if g["kits"] else ""),
                        str(g["image"]),
                        f"{since(g['built'])} ago" if isinstance(g["built"], float) else "-",
                        f"{g['mib']} MiB",
                    )
                    for g in snapshots
                ],
                ("KEY", "SHAPE", "IMAGE", "BUILT", "DISK"),
            )
        )
    return 0


@contextlib.contextmanager
def _filling(wait: bool = False) -> Iterator[bool]:
    """One filler at a time; the next one (or a drain) waits for it, so that the pool is
    never overfilled and no member is booted after a drain."""
    root = Store().root
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".pool.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


async def fill(args: argparse.Namespace) -> int:
    from sandkit.sandbox.request import SandboxRequest, build

    request = SandboxRequest(
        agent=args.agent or "shell",
        kits=list(args.kit),
        kit_args=dict(args.kit_arg),
        name="prepared",
        cpus=args.cpus,  # None: the agent kit's resources, else the host-scaled default
        memory=args.memory,
        default_policy=args.default,
    )
    config = build(request, pool_member=True)  # the same checks as a sandbox of its own
    cpus, memory = config.cpus, config.memory_mib  # the shape that `run` would choose
    prepared_for = config if args.agent or args.kit else None
    if prepared_for is not None and not args.quiet:
        print(
            "members prepared for these kits run their installs first (once per kit set:"
            " later members are clones); this can take minutes",
            file=sys.stderr,
        )
    with _filling(wait=True):  # after another filler: it may have filled the pool already
        started = await warm_pool.fill(Store(), cpus, memory, args.size, prepared_for)
    if not args.quiet:
        kind = f" prepared for {prepared_for.agent}" if prepared_for else ""
        kind += "".join(f" + {k}" for k in prepared_for.kits) if prepared_for else ""
        print(f"{started} member(s) started; shape {warm_pool.shape(cpus, memory)}{kind}")
    return 0


async def drain(args: argparse.Namespace) -> int:
    from sandkit.vm import golden

    store = Store()
    with _filling(wait=True):
        members = warm_pool.pool_members(store)
        for member in members:
            await lifecycle.remove(store, member, force=True)
        removed = await asyncio.to_thread(golden.remove) if args.golden else 0
    print(
        f"{len(members)} member(s) removed"
        + (f", {removed} golden snapshot(s)" if args.golden else "")
    )
    return 0
