"""Which paths sync leaves alone: defaults a user can see and override, plus the
workspace's .sandkitignore (gitignore syntax; `!pattern` re-includes a default)."""

from __future__ import annotations

import re
from pathlib import Path

import pathspec

IGNORE_FILE = ".sandkitignore"
# Rebuildable or machine-specific: syncing them costs more than it helps. Override with
# `!node_modules/` (etc.) in .sandkitignore.
DEFAULTS = (
    "node_modules/",
    ".venv/",
    "__pycache__/",
    "*.pyc",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
)
ALWAYS = (".sandkit-tmp-*",)  # our own temporary files, never synced


class Ignore:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        self._spec = pathspec.GitIgnoreSpec.from_lines([*patterns, *ALWAYS])
        self._any = _any_of(self._spec)

    @classmethod
    def for_workspace(cls, root: Path) -> Ignore:
        try:
            own = (root / IGNORE_FILE).read_text().splitlines()
        except OSError:
            own = []
        return cls([*DEFAULTS, *own])

    def __call__(self, relpath: str, is_dir: bool = False) -> bool:
        path = relpath + "/" if is_dir else relpath
        if self._any is not None and self._any.search(path) is None:
            return False  # no pattern matches at all: the common case, in one regex
        return self._spec.match_file(path)


_GROUP = re.compile(r"\(\?P<\w+>")


def _any_of(spec: pathspec.GitIgnoreSpec) -> re.Pattern[str] | None:
    """One regex that matches where any of the spec's patterns does (their group names
    dropped so that they can be joined), or None where they cannot be joined: then every
    path goes through the spec."""
    parts = []
    for pattern in spec.patterns:
        if getattr(pattern, "include", None) is None:
            continue  # never matches (a comment, a blank line)
        regex = getattr(pattern, "regex", None)
        if not isinstance(regex, re.Pattern) or regex.flags != re.U or "(?P=" in regex.pattern:
            return None
        parts.append("(?:" + _GROUP.sub("(?:", regex.pattern) + ")")
    try:
        return re.compile("|".join(parts)) if parts else None
    except re.error:
        return None
