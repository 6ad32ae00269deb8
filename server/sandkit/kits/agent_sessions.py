"""The agent's session verbs (pure): agent-sessions@1 (headless) and
agent-interactive-sessions@1 (with a terminal) turned into argv.

Each verb is the launch argv (entrypoint and args) plus the verb's tail, with
``{{.Prompt}}``/``{{.SessionID}}`` replaced by the caller's raw values (exec argv, never
a shell string). An absent verb is unsupported and says so; no flag is improvised."""

from __future__ import annotations

import enum

from sandkit.errors import SandkitError
from sandkit.kits.model import Agent, SessionVerbs

PROMPT = "{{.Prompt}}"
SESSION_ID = "{{.SessionID}}"


class Verb(enum.StrEnum):
    PROMPT = "prompt"
    RESUME = "resume"
    CONTINUE = "continue"
    NEW = "new"
    PICKER = "picker"


class UnsupportedVerb(SandkitError):
    """The agent's kit declares no such session verb."""


_FIELDS = {
    Verb.PROMPT: "prompt",
    Verb.RESUME: "resume",
    Verb.CONTINUE: "continue_session",
    Verb.NEW: "new_session",
    Verb.PICKER: "session_picker",
}


def verbs_of(agent: Agent, interactive: bool) -> SessionVerbs | None:
    return agent.interactive_sessions if interactive else agent.sessions


def session_argv(
    agent: Agent,
    verb: Verb,
    *,
    interactive: bool,
    prompt: str | None = None,
    session_id: str | None = None,
    kit: str | None = None,
) -> list[str]:
    """``kit``: the agent kit's name, for the messages."""
    launch = [*agent.entrypoint, *agent.args]
    verbs = verbs_of(agent, interactive)
    tail = getattr(verbs, _FIELDS[verb]) if verbs is not None else None
    if verb is Verb.NEW and interactive and tail is None:
        # Omitted newSession is the interactive launch: the lifecycle tail, if any.
        return [*agent.entrypoint, *(agent.interactive_args or agent.args)]
    if tail is None:
        kind = "interactive " if interactive else ""
        who = f"kit '{kit}'" if kit else "the agent's kit"
        raise UnsupportedVerb(
            f"{who} declares no {kind}'{verb.value}' session verb "
            f"({'agent-interactive-sessions@1' if interactive else 'agent-sessions@1'}), "
            "so this agent cannot do that"
        )
    values = {PROMPT: prompt, SESSION_ID: session_id}
    out = []
    for arg in tail:
        for placeholder, value in values.items():
            if placeholder in arg:
                if value is None:
                    raise UnsupportedVerb(
                        f"the '{verb.value}' verb needs a value for {placeholder}"
                    )
                arg = arg.replace(placeholder, value)
        out.append(arg)
    return [*launch, *out]


def list_argv(agent: Agent, interactive: bool) -> list[str]:
    """The complete command whose output lists resumable session ids."""
    verbs = verbs_of(agent, interactive)
    if verbs is None or verbs.list_command is None:
        raise UnsupportedVerb("the agent's kit declares no command that lists its sessions")
    return list(verbs.list_command)


def session_ids(stdout: str) -> list[str]:
    """One id a line, most recent first; blank lines are not ids."""
    return [line.strip() for line in stdout.splitlines() if line.strip()]
