"""The workspace: the share filled from it and kept in sync (sync/engine.py in a worker
thread), what waits for a person, and the kits' workspace files."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandkit.errors import SandkitError
from sandkit.guestuser import AGENT_IDS, AGENT_UID
from sandkit.logs import logger

if TYPE_CHECKING:
    from sandkit.sandbox.supervisor.process import Supervisor
    from sandkit.sync.protect import Protected

log = logger("sandkit.supervisor")
GUEST_SHARE = "/run/sandkit/share"


async def start_sync(sup: Supervisor, workspace: Path) -> None:
    from sandkit.sync.engine import SyncEngine

    if not workspace.is_dir():
        raise SandkitError(f"the workspace {workspace} is gone")
    owners: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None)
    if os.geteuid() == 0:  # files in the share belong to the guest's agent user
        st = workspace.stat()
        owners = (AGENT_UID, AGENT_UID), (st.st_uid, st.st_gid)
    sync = sup.sync = SyncEngine(
        workspace,
        sup.sandbox.share,
        sup.sandbox.dir / "sync",
        share_owner=owners[0],
        host_owner=owners[1],
        protected=protected_paths(workspace, sup.config.kits),
    )
    loop = sup.sync_loop = asyncio.get_running_loop()
    sync.listeners.append(lambda event, data: on_sync_event(sup, loop, event, data))
    await handing_back(sup, lambda: asyncio.to_thread(sync.sync))
    sup.save(sync=sync.status)
    sup.sync_task = sup.spawn(handing_back(sup, lambda: sync.run(sup.sync_stop)), "sync")


def on_sync_event(
    sup: Supervisor, loop: asyncio.AbstractEventLoop, event: str, data: dict[str, Any]
) -> None:
    """Called from the sync thread (or the loop): everything is handed to the loop, which
    alone writes state.json and talks to clients."""
    if event == "status":
        loop.call_soon_threadsafe(_save_sync, sup, str(data["status"]))
    else:
        log.info("sync %s %s", event, data)
    if event in ("deletions-held", "protected-held"):
        held = {"event": "sync-held", "kind": event, "paths": list(data.get("paths", []))}
        loop.call_soon_threadsafe(_tell_watchers, sup, held)


def _save_sync(sup: Supervisor, status: str) -> None:
    if sup.cleanups == 0:  # not after the end was recorded
        sup.save(sync=status)


def _tell_watchers(sup: Supervisor, event: dict[str, Any]) -> None:
    for queue in sup.sync_watchers:
        queue.put_nowait(event)


async def place_workspace_files(sup: Supervisor, workspace: Path) -> None:
    """The kits' files/workspace/** into the share, then to the host at once (not
    when a watcher notices)."""
    from sandkit.sandbox.kitapply import place_workspace_files

    if sup.resolution is None:
        return
    placed = place_workspace_files(
        sup.resolution.sandbox, list(sup.resolution.loaded), sup.sandbox.share, workspace
    )
    if placed and sup.sync is not None:
        await asyncio.to_thread(sup.sync.sync, placed)


async def hand_back(sup: Supervisor, paths: list[str]) -> None:
    """Run as anyone but root, what the guest's root made in the share belongs to one
    of the user's subordinate ids on the host (vm/userns.py), which sync, running as
    the user, can read but not change. Before sync answers for held paths, the guest
    gives them, and the folders they are in, back to its agent: the user, on the host."""
    channel = sup.machine.channel if sup.machine is not None else None
    if os.geteuid() == 0 or not paths or channel is None:
        return
    targets: set[str] = set()
    for rel in paths:
        parts = rel.split("/")
        targets.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    # In the guest, on its own share: nothing it could not do itself. A path already
    # gone is no error worth more than chown's message.
    await channel.run(
        ["chown", "-h", AGENT_IDS, "--", *(f"{GUEST_SHARE}/{t}" for t in sorted(targets))]
    )


async def handing_back(sup: Supervisor, step: Callable[[], Awaitable[object]]) -> None:
    """Run a sync step; run as anyone but root, if it stops on a file or folder of
    the guest's root in the share (see hand_back), the guest gives every such entry of
    the workspace to its agent, and the step runs again: sync never stops on them."""
    for tries in range(10):  # a cause that is not the guest's root: stop all the same
        try:
            await step()
            return
        except PermissionError as exc:
            channel = sup.machine.channel if sup.machine is not None else None
            if os.geteuid() == 0 or channel is None or tries == 9:
                raise
            find = [GUEST_SHARE, "-xdev", "!", "-user", str(AGENT_UID), "-print"]
            done = await channel.run(["find", *find, "-exec", "chown", "-h", AGENT_IDS, "{}", "+"])
            if done.exit_status != 0 or not done.stdout.strip():
                raise  # nothing of the guest's root: not the cause
            log.info("sync: %s; the guest's root's files in the share go to its agent", exc)
            if sup.stopping:  # after the await, with nothing between it and clear()
                return
            sup.sync_stop.clear()  # set by the sync's run() as it ended


def protected_paths(workspace: Path, kits: list[str]) -> Protected:
    """The user's protected paths, plus the kit folders inside this workspace that the
    sandbox uses: an agent that rewrites its own kit would widen its next start."""
    from sandkit.paths import config_dir
    from sandkit.sync.protect import Protected

    extra = []
    for kit in kits:
        path = Path(kit)
        if not path.is_absolute():
            continue
        if path.is_relative_to(workspace):
            rel = path.relative_to(workspace).as_posix()
            extra.append(f"/{rel}" if path.suffix in (".zip", ".yaml", ".yml") else f"/{rel}/**")
    return Protected.for_user(config_dir(), extra)
