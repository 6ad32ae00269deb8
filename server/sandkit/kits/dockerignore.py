"""A kit's .dockerignore, read as Docker reads a build context's (moby's patternmatcher):
each line a pattern relative to the kit folder, ``!`` re-includes, the last pattern that
matches a path or one of its parent folders decides; ``*`` and ``?`` stay within one path
part, ``**`` spans any number of them, ``\\`` escapes. Unlike .gitignore, a pattern with no
slash matches at the top only (``*.md``; ``**/*.md`` is every level). Pure: the text in,
a predicate out."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

FILE = ".dockerignore"


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool  # a "!" line: what it matches is copied after all


@dataclass(frozen=True)
class DockerIgnore:
    patterns: tuple[_Pattern, ...] = ()

    def __call__(self, path: str) -> bool:
        """Is the kit file ``path`` (relative, '/'-separated) left out of the context?"""
        parents = _parents(path)
        ignored = False
        for pattern in self.patterns:
            if pattern.exclusion == ignored and any(pattern.regex.match(p) for p in parents):
                ignored = not pattern.exclusion
        return ignored


class DockerIgnoreError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def parse(text: str) -> DockerIgnore:
    """The patterns of a .dockerignore; DockerIgnoreError names a line that is not one."""
    patterns = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        line = line[1:].strip() if exclusion else line
        line = posixpath.normpath(line).lstrip("/")
        if line in ("", "."):
            continue
        try:
            regex = re.compile(_regex(line))
        except re.error as exc:
            raise DockerIgnoreError(number, f"'{raw.strip()}' is not a pattern ({exc})") from None
        patterns.append(_Pattern(regex, exclusion))
    return DockerIgnore(tuple(patterns))


def _parents(path: str) -> list[str]:
    """``a/b/c`` and the folders above it: ``a/b``, ``a``."""
    parts = path.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _regex(pattern: str) -> str:
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*" and pattern[i : i + 2] == "**":
            if pattern[i + 2 : i + 3] == "/":  # "**/": any number of folders, or none
                out.append("(.*/)?")
                i += 3
                continue
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                out.append(("[^/" if negate else "[") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return "".join(out)
