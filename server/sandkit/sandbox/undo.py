"""Restoring host files from a sandbox's sync trash (`sandkit undo`, the editor's Undo
Sync): every file sync overwrote or deleted on the host was moved there first."""

from __future__ import annotations

from pathlib import Path

from sandkit.sandbox.store import Sandbox, SandboxError
from sandkit.sync.journal import Journal
from sandkit.sync.safefs import SafeTree, UnsafePath

Entry = tuple[int, str, str, str, str]  # id, when, workspace-relative path, stored at, why


def trash(sandbox: Sandbox) -> list[Entry]:
    db = sandbox.dir / "sync" / "sync.db"
    if not db.exists():
        raise SandboxError(f"sandbox '{sandbox.name}' has no sync journal yet: nothing to undo")
    journal = Journal(db)
    try:
        return list(journal.trash())
    finally:
        journal.close()


def last_batch(entries: list[Entry]) -> list[str]:
    """The paths the last sync step trashed (an approved mass deletion, say)."""
    if not entries:
        return []
    newest = max(stamp for _, stamp, *_ in entries)
    return sorted({path for _, stamp, path, *_ in entries if stamp == newest})


def restore(sandbox: Sandbox, entries: list[Entry], paths: list[str]) -> list[tuple[str, str]]:
    """Put the newest trashed version of each path back; returns (path, when) pairs."""
    workspace = sandbox.config().workspace
    if workspace is None:
        raise SandboxError("this sandbox has no workspace")
    restored = []
    tree = SafeTree(Path(workspace))
    try:
        for wanted in paths:
            rel = wanted.strip("/")
            versions = [e for e in entries if e[2] == rel]
            if not versions:
                raise SandboxError(
                    f"no trashed version of '{rel}' (see `sandkit undo {sandbox.name} --list`)"
                )
            # Through safefs: a link the guest left in the workspace is replaced, never
            # written through.
            try:
                tree.import_(rel, Path(versions[-1][3]), move=False, replace=True)
            except UnsafePath as exc:
                raise SandboxError(
                    f"cannot restore '{rel}': {exc}. Remove the link from the workspace, "
                    "then run undo again"
                ) from None
            restored.append((rel, versions[-1][1]))
    finally:
        tree.close()
    return restored
