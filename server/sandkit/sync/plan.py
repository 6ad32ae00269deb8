"""The sync plan (pure): from the host tree, the share tree and the last synced state
(the base), decide what to copy, delete or flag, path by path (a three-way merge).

- changed on one side only: that side wins (copy or delete toward the other);
- changed on both sides to the same thing: nothing to do but record it;
- changed on both sides differently: a conflict; the host's version stays at the path and
  the share's version is kept beside it under a name that says what it is;
- deleted on one side and edited on the other: the edit wins (nothing is lost).
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Kind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"


@dataclass(frozen=True)
class Entry:
    """What is at a path. ``digest`` identifies file content (None: not known, which
    compares as different from everything, so the doubt costs a copy, never a loss)."""

    kind: Kind
    mode: int = 0o644
    size: int = 0
    digest: str | None = None
    target: str | None = None  # symlinks

    def same(self, other: Entry | None) -> bool:
        if other is None or self.kind is not other.kind:
            return False
        if self.kind is Kind.DIR:
            return True
        if self.kind is Kind.LINK:
            return self.target == other.target
        return (
            self.digest is not None
            and self.digest == other.digest
            and self.size == other.size
            and self.mode & 0o777 == other.mode & 0o777
        )

    def same_content(self, other: Entry | None) -> bool:
        return (
            other is not None
            and self.kind is other.kind is Kind.FILE
            and self.digest is not None
            and self.digest == other.digest
        )


Tree = Mapping[str, Entry]


class Op(enum.StrEnum):
    TO_SHARE = "to-share"  # copy/create host -> share
    TO_HOST = "to-host"  # copy/create share -> host (the host's old version goes to trash)
    DELETE_SHARE = "delete-share"
    DELETE_HOST = "delete-host"  # (to trash)
    CONFLICT = "conflict"  # keep the share's version beside the host's, then host -> share
    RECORD = "record"  # both sides agree: just remember it
    FORGET = "forget"  # gone on both sides
    REFUSE_LINK = "refuse-link"  # a share-side link leaving the workspace: not made on host


@dataclass(frozen=True)
class Action:
    op: Op
    path: str
    entry: Entry | None = None  # the winning entry, where there is one


def _same(a: Entry | None, b: Entry | None) -> bool:
    return (a is None and b is None) or (a is not None and a.same(b))


def escapes(path: str, target: str) -> bool:
    """Does a link at ``path`` (relative to the workspace) point outside it?"""
    if target.startswith("/"):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return resolved == ".." or resolved.startswith("../")


def plan(host: Tree, share: Tree, base: Tree, paths: Iterable[str] | None = None) -> list[Action]:
    """Actions that bring both trees to one state. ``paths`` limits the plan to some paths
    (a watcher's batch); the trees must then hold those paths' current entries."""
    names = set(paths) if paths is not None else set(host) | set(share) | set(base)
    actions = [a for p in names for a in _decide(p, host.get(p), share.get(p), base.get(p))]
    return order(actions)


def _decide(path: str, h: Entry | None, s: Entry | None, b: Entry | None) -> list[Action]:
    host_changed, share_changed = not _same(h, b), not _same(s, b)
    if not host_changed and not share_changed:
        return []
    if _same(h, s):
        return [Action(Op.FORGET, path)] if h is None else [Action(Op.RECORD, path, h)]
    if host_changed and not share_changed:
        return [Action(Op.DELETE_SHARE, path) if h is None else Action(Op.TO_SHARE, path, h)]
    if share_changed and not host_changed:
        if s is None:
            return [Action(Op.DELETE_HOST, path)]
        if s.kind is Kind.LINK and s.target is not None and escapes(path, s.target):
            return [Action(Op.REFUSE_LINK, path, s)]
        return [Action(Op.TO_HOST, path, s)]
    # Both changed, differently.
    if h is None:  # deleted on the host, edited in the share: the edit wins
        if s is not None and s.kind is Kind.LINK and s.target and escapes(path, s.target):
            return [Action(Op.REFUSE_LINK, path, s)]
        return [Action(Op.TO_HOST, path, s)]
    if s is None:  # deleted in the share, edited on the host
        return [Action(Op.TO_SHARE, path, h)]
    if h.kind is Kind.DIR and s.kind is Kind.DIR:
        return [Action(Op.RECORD, path, h)]
    if h.kind is s.kind is Kind.FILE and h.same_content(s):  # only the modes differ: host wins
        return [Action(Op.TO_SHARE, path, h)]
    return [Action(Op.CONFLICT, path, h)]


_RANK = {
    Op.DELETE_SHARE: 0,
    Op.DELETE_HOST: 0,
    Op.CONFLICT: 1,
    Op.TO_SHARE: 2,
    Op.TO_HOST: 2,
    Op.RECORD: 3,
    Op.FORGET: 3,
    Op.REFUSE_LINK: 3,
}


def order(actions: list[Action]) -> list[Action]:
    """Deletions deepest first, then creations shallowest first (parents before children)."""

    def key(a: Action) -> tuple[int, int, str]:
        depth = a.path.count("/")
        return (_RANK[a.op], -depth if _RANK[a.op] == 0 else depth, a.path)

    return sorted(actions, key=key)


def parents(rel: str) -> list[str]:
    """The folders above a path, outermost first: 'a/b/c' -> ['a', 'a/b']."""
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def conflict_name(path: str, stamp: str) -> str:
    """Where the share's side of a conflict is kept: 'notes.md' -> 'notes.sandbox-conflict-STAMP.md'."""
    head, tail = posixpath.split(path)
    stem, dot, ext = tail.partition(".") if not tail.startswith(".") else (tail, "", "")
    name = f"{stem}.sandbox-conflict-{stamp}{dot}{ext}"
    return posixpath.join(head, name) if head else name
