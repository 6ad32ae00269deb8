"""The guest's `agent` user: one uid and gid, here in the base layer so that every layer
that writes it (the image build, kit installs, the share's ownership, the host's id maps)
uses the same number. Kits' own `user: "1000"` defaults are the kit format's (sbx's)."""

from __future__ import annotations

AGENT_USER = "agent"
AGENT_UID = 1000  # also its gid (useradd gives it the group of the same number)
AGENT_IDS = f"{AGENT_UID}:{AGENT_UID}"  # as chown takes them
