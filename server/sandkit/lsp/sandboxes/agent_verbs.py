"""The agent kit's session verbs from the editor, as `sandkit run --prompt/--continue/
--resume` runs them: which ones the sandbox's agent kit declares (``sandkit.agentVerbs``),
and one run in a terminal of the sandbox (``sandkit.runAgentVerb``), refused before the
sandbox starts when the kit does not declare it.

A verb runs as its own agent process bound to its terminal, as `run`'s is bound to the
command (closing the terminal hangs it up); the supervisor builds its argv with
agent_command's one rule (agent-argv), with a terminal's (interactive) verbs.

The messages are lsp/protocol.py's, like every other command's."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sandkit.errors import SandkitError
from sandkit.lsp import protocol
from sandkit.lsp.sandboxes.common import Context, command
from sandkit.sandbox import lifecycle
from sandkit.sandbox.store import Store

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer


def register(ctx: Context) -> None:
    @command(ctx.server, protocol.AGENT_VERBS)
    async def agent_verbs(ls: SandkitServer, p: dict[str, Any]) -> protocol.AgentVerbsResult:
        from sandkit.sandbox.agent_command import declared_verbs
        from sandkit.sandbox.request import resolved_kits

        # Off the event loop: resolving may read kit files or fetch a git kit.
        config = Store().get(str(p["name"])).config()
        sandbox = await asyncio.to_thread(resolved_kits, config)
        verbs: list[Any] = [v.value for v in declared_verbs(sandbox, interactive=True)]
        return {"kit": sandbox.agent_name, "verbs": verbs}

    @command(ctx.server, protocol.RUN_AGENT_VERB)
    async def run_agent_verb(ls: SandkitServer, p: dict[str, Any]) -> protocol.TerminalStarted:
        from sandkit.kits.agent_sessions import Verb
        from sandkit.sandbox.agent_command import RUN_VERBS, SessionRequest
        from sandkit.sandbox.request import check_session_verb

        sandbox = Store().get(str(p["name"]))
        config = sandbox.config()
        if p["verb"] not in {v.value for v in RUN_VERBS}:
            raise SandkitError(f"no session verb '{p['verb']}' (prompt, continue or resume)")
        prompt, session_id = p.get("prompt"), p.get("sessionId")
        session = SessionRequest(
            Verb(p["verb"]),
            None if prompt is None else str(prompt),
            None if session_id is None else str(session_id),
        )
        # Before the sandbox starts; off the event loop, as the kits may be resolved.
        await asyncio.to_thread(check_session_verb, config, session, True)
        await ctx.started(ls, sandbox)
        async with await lifecycle.connect(sandbox) as client:
            argv = (
                await client.agent_argv(
                    [], True, session.verb.value, session.prompt, session.session_id
                )
            ).argv
        terminal = await ctx.terminals.start(
            sandbox,
            argv,
            user="agent",
            cwd=config.workspace,
            env={"TERM": "xterm-256color"},  # the kits' variables are the supervisor's
            pty=True,
            rows=int(p.get("rows") or 24),
            cols=int(p.get("cols") or 80),
        )
        return {"terminal": terminal}
