"""The agent's command line (pure): sbx's rule for `run AGENT -- ARGS`, and the session
verbs (`run --prompt/--continue/--resume`), one rule for the CLI and the editor."""

from __future__ import annotations

from dataclasses import dataclass

from sandkit.errors import SandkitError
from sandkit.kits.agent_sessions import UnsupportedVerb, Verb, session_argv
from sandkit.kits.model import ResolvedSandbox

# What `run` offers (--prompt, --continue, --resume), and the editor with it.
RUN_VERBS = (Verb.PROMPT, Verb.CONTINUE, Verb.RESUME)


@dataclass(frozen=True)
class SessionRequest:
    """A session verb (agent-sessions@1, or agent-interactive-sessions@1 with a terminal)
    and the caller's raw values for its placeholders."""

    verb: Verb
    prompt: str | None = None
    session_id: str | None = None


def agent_argv(
    sandbox: ResolvedSandbox,
    extra: list[str],
    interactive: bool,
    session: SessionRequest | None = None,
) -> list[str]:
    """A leading flag appends to the kit's entrypoint and args; a bare word replaces them.
    With a session verb, the verb's tail follows the launch argv and ``extra`` follows it.
    UnsupportedVerb when the kit declares no such verb."""
    agent = sandbox.agent
    if agent.command_missing is not None and (
        session is not None or not extra or extra[0].startswith("-")
    ):
        raise SandkitError(f"agent kit '{sandbox.agent_name}': {agent.command_missing}")
    if session is not None:
        # A terminal takes the interactive verbs when the kit declares them; a kit with only
        # the headless ones runs those in the terminal.
        tty = interactive and agent.interactive_sessions is not None
        argv = session_argv(
            agent,
            session.verb,
            interactive=tty,
            prompt=session.prompt,
            session_id=session.session_id,
            kit=sandbox.agent_name,
        )
        return [*argv, *extra]
    base = [*agent.entrypoint]
    defaults = (
        agent.interactive_args if interactive and agent.interactive_args is not None else agent.args
    )
    if extra and not extra[0].startswith("-"):
        return list(extra)
    argv = [*base, *defaults, *extra]
    return argv or ["bash", "-l"]


def declared_verbs(sandbox: ResolvedSandbox, interactive: bool) -> list[Verb]:
    """Which of RUN_VERBS the agent kit declares, by agent_argv's own rule (so that what
    is offered is what then runs). The missing command's error, if any, is raised."""
    found = []
    for verb in RUN_VERBS:
        try:
            agent_argv(sandbox, [], interactive, SessionRequest(verb, "x", "x"))
        except UnsupportedVerb:
            continue
        found.append(verb)
    return found
