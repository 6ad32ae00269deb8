"""The agent's command line (pure): sbx's rule for `run AGENT -- ARGS`."""

from __future__ import annotations

from sandkit.kits.model import ResolvedSandbox


def agent_argv(sandbox: ResolvedSandbox, extra: list[str], interactive: bool) -> list[str]:
    """A leading flag appends to the kit's entrypoint and args; a bare word replaces them."""
    base = [*sandbox.agent.entrypoint]
    defaults = (
        sandbox.agent.interactive_args
        if interactive and sandbox.agent.interactive_args is not None
        else sandbox.agent.args
    )
    if extra and not extra[0].startswith("-"):
        return list(extra)
    argv = [*base, *defaults, *extra]
    return argv or ["bash", "-l"]
