"""Options every verb group shares, parsed one way: --kit-arg NAME=VALUE, the sandbox
shape, the help formatter. (Sizes, pins and kit references are checked in
sandbox/request.py.)"""

from __future__ import annotations

import argparse


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def kit_arg(text: str) -> tuple[str, str]:
    """argparse type for --kit-arg NAME=VALUE (every command that takes kits uses it)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=VALUE")
    return name, value


def add_kit_arg_option(parser: argparse.ArgumentParser) -> None:
    """--kit-arg NAME=VALUE, the same on every command that takes kits."""
    parser.add_argument(
        "--kit-arg",
        type=kit_arg,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="value for a kit arg (repeatable)",
    )


def add_shape_options(parser: argparse.ArgumentParser, disk: bool = True) -> None:
    """--cpus, --memory (and, for run/create, --disk and --docker), the same on every
    command that makes a sandbox.
    Their defaults are None: the agent kit's resources, else a default scaled to this
    machine (kits/shape.py), is used for what is not given."""
    parser.add_argument(
        "--cpus",
        type=int,
        default=None,
        help="virtual CPUs (default: the agent kit's resources, else this machine's "
        "CPUs minus one)",
    )
    parser.add_argument(
        "--memory",
        default=None,
        metavar="SIZE",
        help="guest memory, e.g. 4g (default: the agent kit's resources, else half this "
        "machine's memory, at most 8g)",
    )
    if disk:
        parser.add_argument(
            "--docker",
            action="store_true",
            help="a private Docker Engine inside the sandbox (the built-in docker kit): "
            "docker build/run/compose work in the VM, their pulls go through the proxy",
        )
        parser.add_argument(
            "--disk",
            default=None,
            metavar="SIZE",
            help="the guest's disk, sparse, e.g. 40g (default 20g; at least 4g)",
        )
