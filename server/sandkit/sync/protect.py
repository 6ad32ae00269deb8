"""Paths whose content the host runs (pure): git hooks and config, editor tasks, direnv,
shell rc files, sandkit's own settings. A change to one of them coming from the sandbox is
held for a person, like a mass deletion, instead of reaching the host where git, VS Code or
a shell would execute it.

The list is the user's, never the workspace's: defaults here, plus
``~/.config/sandkit/protected`` (gitignore syntax; ``!pattern`` removes a default)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pathspec

USER_FILE = "protected"
DEFAULTS = (
    "**/.git/hooks/**",
    "**/.git/config",
    "**/.git/info/**",
    "**/.git/modules/**/config",
    "**/.git/modules/**/hooks/**",
    ".gitmodules",
    ".gitattributes",
    ".vscode/**",
    ".devcontainer/**",
    ".devcontainer.json",
    ".idea/**",
    ".envrc",
    ".sandkit.yaml",
    ".sandkitignore",
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pypirc",
    "pip.conf",
    ".pre-commit-config.yaml",
    ".mise.toml",
)


class Protected:
    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = list(patterns)
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns)

    @classmethod
    def for_user(cls, config_dir: Path, extra: Iterable[str] = ()) -> Protected:
        """Defaults, kit folders the workspace uses (``extra``), then the user's file."""
        try:
            own = (config_dir / USER_FILE).read_text().splitlines()
        except OSError:
            own = []
        return cls([*DEFAULTS, *extra, *own])

    def __call__(self, rel: str) -> bool:
        return self._spec.match_file(rel)


# -- .git/config: which changes run nothing -------------------------------------------------
# An allow list (fail closed): keys agents change for ordinary reasons. Anything else
# (core.fsmonitor, core.hooksPath, core.sshCommand, core.pager, filter.*, diff.*.textconv,
# credential.helper, include.*, aliases, …) holds the change for a person.
_SAFE_KEYS = tuple(
    re.compile(p)
    for p in (
        r"core\.(repositoryformatversion|filemode|bare|logallrefupdates|ignorecase|precomposeunicode|autocrlf|eol|safecrlf|symlinks|quotepath)",
        r'remote\.".*"\.(url|pushurl|fetch|push|tagopt|prune|mirror|skipdefaultupdate)',
        r'branch\.".*"\.(remote|merge|rebase|pushremote|description)',
        r"user\.(name|email)",
        r"init\.defaultbranch",
        r"pull\.(rebase|ff)",
        r"push\.(default|autosetupremote|followtags)",
        r"fetch\.(prune|prunetags)",
        r"merge\.(ff|conflictstyle)",
        r"rerere\.enabled",
        r"extensions\.(worktreeconfig|objectformat)",
        r"color\.[a-z.]+",
        r"advice\.[a-z]+",
    )
)


def git_config_pairs(text: str) -> list[tuple[str, str]] | None:
    """(key, value) pairs of a git config file, keys as git names them (section and
    name lower-case, subsection kept). None when the text is not plainly parseable: a
    file that cannot be read is never judged harmless."""
    pairs: list[tuple[str, str]] = []
    section: str | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            m = re.fullmatch(r'\[\s*([A-Za-z0-9.-]+)\s*(?:"((?:[^"\\]|\\.)*)")?\s*\](.*)', stripped)
            if m is None:
                return None
            name, sub, rest = m.groups()
            section = name.lower() if sub is None else f'{name.lower()}."{sub}"'
            stripped = rest.strip()
            if not stripped or stripped[0] in "#;":
                continue
        if section is None:
            return None
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?", stripped)
        if m is None:
            return None
        pairs.append((f"{section}.{m.group(1).lower()}", (m.group(2) or "true").strip()))
    return pairs


def git_config_change_is_safe(old: str | None, new: str) -> bool:
    """True when every key the change adds, removes or alters is on the allow list and no
    remote URL names a command transport."""
    before = git_config_pairs(old) if old is not None else []
    after = git_config_pairs(new)
    if before is None or after is None:
        return False
    changed = {k for k, _ in set(before) ^ set(after)}
    for key in changed:
        if not any(p.fullmatch(key) for p in _SAFE_KEYS):
            return False
    for key, value in after:
        if key in changed and key.endswith(("url", "pushurl")):
            bare = value.strip('"').lower()
            if "::" in bare or bare.startswith("-"):
                return False  # ext::/fd:: transports run commands; "-..." is an option
    return True


def is_git_config(rel: str) -> bool:
    return rel == ".git/config" or rel.endswith("/.git/config")
