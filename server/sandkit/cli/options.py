"""Options every verb group shares, parsed one way: --kit-arg NAME=VALUE, the help
formatter. (Sizes, pins and kit references are checked in sandbox/request.py.)"""

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
