"""Where a sandbox's instructions file (its agent-context profile) goes, pure.

v3 agent-context@1: an explicit profile (``directory`` plus ``filename``) is written in
that directory, and wins over the agent's legacy filename whatever the kit order; every
distinct explicit profile is written. Without one, the legacy profile goes beside the
workspace (in its parent folder, as sbx does), or in the agent's home without one."""

from __future__ import annotations

import posixpath

from sandkit.kits.model import ResolvedSandbox

HOME = "/home/agent"


def profile_paths(sandbox: ResolvedSandbox, workspace: str | None) -> list[str]:
    """Absolute guest paths of the profile files, in composition order."""
    explicit = list(
        dict.fromkeys(
            posixpath.join(c.directory, c.filename)
            for c in sandbox.agent_context
            if c.directory and c.filename
        )
    )
    if explicit:
        return explicit
    filename = sandbox.agent.context_filename
    if not filename:
        return []
    parent = posixpath.dirname(workspace.rstrip("/")) if workspace else HOME
    return [posixpath.join(parent, filename)]
