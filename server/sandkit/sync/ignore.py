"""Which paths sync leaves alone: defaults a user can see and override, plus the
workspace's .sandkitignore (gitignore syntax; `!pattern` re-includes a default)."""

from __future__ import annotations

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

    @classmethod
    def for_workspace(cls, root: Path) -> Ignore:
        try:
            own = (root / IGNORE_FILE).read_text().splitlines()
        except OSError:
            own = []
        return cls([*DEFAULTS, *own])

    def __call__(self, relpath: str, is_dir: bool = False) -> bool:
        return self._spec.match_file(relpath + "/" if is_dir else relpath)
