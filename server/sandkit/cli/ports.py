"""`sandkit ports NAME [--publish SPEC] [--unpublish SPEC]`: guest ports the host can reach,
through QEMU's user network (host forwarding, added and removed while the VM runs)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from sandkit.sandbox import lifecycle
from sandkit.sandbox.ports import HELP, PortError, Published, check_new, find, parse, saved
from sandkit.sandbox.state import SandboxState
from sandkit.sandbox.store import Sandbox, SandboxError, Store

DESCRIPTION = """\
Publish a port of the sandbox on this machine: QEMU's user network forwards a host
address to a guest port. The host side binds 127.0.0.1 unless you name another
address (HOST_IP:); a guest service listening on 127.0.0.1 or 0.0.0.0 answers. The
guest still cannot open a connection of its own: only its proxy is reachable.

Published ports are kept: a restart or `sandkit reset` publishes them again. A kit's
ports (v2 `ports:`) are published at start, on the same host port when it is free.
A stopped sandbox's ports are recorded and published when it starts."""

EPILOG = """\
examples:
  sandkit ports my-box                          what is published, and what listens
  sandkit ports my-box --publish 8000           guest 8000 on a free host port
  sandkit ports my-box --publish 18000:8000     guest 8000 on 127.0.0.1:18000
  sandkit ports my-box --publish 0.0.0.0:18000:8000    reachable from other machines
  sandkit ports my-box --unpublish 8000"""


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    ports = commands.add_parser(
        "ports",
        formatter_class=formatter,
        help="publish guest ports on this machine (127.0.0.1 by default); list them",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    ports.add_argument("name", metavar="NAME")
    ports.add_argument(
        "--publish",
        action="append",
        default=[],
        metavar="[HOST_IP:][HOST_PORT:]GUEST_PORT[/tcp]",
        help="forward a host port to a guest port (repeatable)",
    )
    ports.add_argument(
        "--unpublish",
        action="append",
        default=[],
        metavar="GUEST_PORT|HOST_PORT:GUEST_PORT",
        help="remove a forward (repeatable)",
    )
    ports.add_argument("--json", action="store_true", help="print JSON")


def add_publish_option(parser: argparse.ArgumentParser) -> None:
    """`run`/`create -p`: ports published when the sandbox starts (and at every start)."""
    parser.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[HOST_IP:][HOST_PORT:]GUEST_PORT",
        help="publish a guest port on this machine (127.0.0.1 unless HOST_IP is given; "
        "repeatable); see `sandkit ports --help`",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio  # here: `run`'s parser loads this module for --publish (~35 ms)

    return asyncio.run(cmd_ports(args))


async def cmd_ports(args: argparse.Namespace) -> int:
    sandbox = Store().get(args.name)
    if sandbox.state().state.live:
        rows, listening = await _live(sandbox, args.publish, args.unpublish, quiet=args.json)
    else:
        rows, listening = _stopped(sandbox, args.publish, args.unpublish, quiet=args.json)
    if args.json:
        print(json.dumps({"ports": [x.as_dict() for x in rows], "listening": listening}, indent=2))
        return 0
    if args.publish or args.unpublish:
        return 0
    print(render(rows, listening))
    return 0


async def _live(
    sandbox: Sandbox, publish: list[str], unpublish: list[str], quiet: bool
) -> tuple[list[Published], list[int] | None]:
    async with await lifecycle.connect(sandbox) as client:
        for spec in unpublish:
            before = _published((await client.ports()).ports)
            result = await client.unpublish(spec)
            _say(quiet, "unpublished", [x for x in before if x not in _published(result.ports)])
        for spec in publish:
            before = _published((await client.ports()).ports)
            result = await client.publish(spec)
            _say(quiet, "published", [x for x in _published(result.ports) if x not in before])
        result = await client.ports()
    return _published(result.ports), result.listening


def _stopped(
    sandbox: Sandbox, publish: list[str], unpublish: list[str], quiet: bool
) -> tuple[list[Published], list[int] | None]:
    """Not running: the forwards are recorded in config.json, for the next start."""
    config = sandbox.config()
    current = saved(config.ports)
    try:
        for spec in unpublish:
            port = find(current, spec)
            current.remove(port)
            _say(quiet, "unpublished", [port])
        for spec in publish:
            port = parse(spec)
            check_new(current, port)
            current.append(port)
            _say(quiet, f"will publish (when {sandbox.name} starts)", [port])
    except PortError as exc:
        raise SandboxError(str(exc)) from None
    if publish or unpublish:
        sandbox.save_config(dataclasses.replace(config, ports=[x.as_dict() for x in current]))
    return sorted(current), None


def _published(infos: list[Any]) -> list[Published]:
    return [Published(x.guest, x.host, x.host_ip, x.proto) for x in infos]


def _say(quiet: bool, what: str, ports: list[Published]) -> None:
    if not quiet:
        for port in ports:
            print(f"{what} {describe(port)}")


def describe(port: Published) -> str:
    host = f"{port.host_ip}:{port.host}" if port.host else f"{port.host_ip}:(a free port)"
    return f"{host} -> guest port {port.guest}/{port.proto}"


def short(port: Published) -> str:
    """As `ls` shows it: 127.0.0.1:18000->8000."""
    return f"{port.host_ip}:{port.host or '?'}->{port.guest}"


def render(rows: list[Published], listening: list[int] | None) -> str:
    from sandkit.ui import table

    listens = set(listening or [])
    lines = [
        (
            f"{x.host_ip}:{x.host}" if x.host else f"{x.host_ip}:(chosen at start)",
            f"{x.guest}/{x.proto}",
            "-" if listening is None else ("yes" if x.guest in listens else "no"),
        )
        for x in rows
    ]
    published = {x.guest for x in rows}
    lines += [("-", f"{g}/tcp", "yes (not published)") for g in sorted(listens - published)]
    text = table(lines, ("HOST", "GUEST", "LISTENING"))
    if not rows:
        text += f"\nnothing published; {HELP.replace('write', 'publish with --publish')}"
    return text


LS_TIMEOUT = 3.0  # seconds `ls` waits for a supervisor's answer before showing config.json's


async def published_now(sandboxes: list[Sandbox]) -> dict[str, list[Published]]:
    """For `ls`: each sandbox's forwards, asked of its supervisor when it runs (a kit's
    ports are published there, not recorded), else the recorded ones."""
    import asyncio

    async def one(sandbox: Sandbox) -> list[Published]:
        recorded = sorted(saved(sandbox.config().ports))
        if sandbox.state().state is not SandboxState.RUNNING:
            return recorded
        try:
            async with asyncio.timeout(LS_TIMEOUT):
                async with await lifecycle.connect(sandbox) as client:
                    return _published((await client.ports()).ports)
        except (SandboxError, OSError, TimeoutError):  # another version, or busy: recorded
            return recorded

    found = await asyncio.gather(*(one(s) for s in sandboxes))
    return {s.name: ports for s, ports in zip(sandboxes, found, strict=True)}
