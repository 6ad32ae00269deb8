"""Positioned problems found in a kit, and the error that carries them."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from sandkit.errors import SandkitError


@dataclass(frozen=True, order=True)
class Span:
    """A range in a file; 0-based like LSP, printed 1-based."""

    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def point(cls, line: int = 0, column: int = 0) -> Span:
        return cls(line, column, line, column)


# Codes of errors that say "valid, but sandkit cannot run it": `kit validate` exits with
# its own status when these are a kit's only errors.
UNSUPPORTED_CAPABILITY = "unsupported-capability"
NOT_IMPLEMENTED = "not-implemented"
UNSUPPORTED_KIND = "unsupported-kind"
NEEDS_SUPPORT = frozenset({UNSUPPORTED_CAPABILITY, NOT_IMPLEMENTED, UNSUPPORTED_KIND})


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class KitIssue:
    """One problem, anchored to the node that caused it.

    ``code`` names the kind of problem for tools (the language server's quick fixes);
    ``suggestion`` is a replacement text for the anchored node when one is known.
    """

    file: str
    span: Span
    message: str
    severity: Severity = Severity.ERROR
    code: str = "invalid"
    suggestion: str | None = field(default=None, compare=False)
    # What sandkit lacks, for NEEDS_SUPPORT codes (a capability type, or "kind: set").
    subject: str | None = field(default=None, compare=False)

    def format(self) -> str:
        return (
            f"{self.file}:{self.span.line + 1}:{self.span.column + 1}: "
            f"{self.severity}: {self.message}"
        )


class KitError(SandkitError):
    """A kit is invalid or kits do not compose. Holds every issue found, errors first."""

    def __init__(self, issues: Iterable[KitIssue]) -> None:
        self.issues = tuple(sorted(issues, key=lambda i: (i.severity != Severity.ERROR,)))
        super().__init__("\n".join(i.format() for i in self.issues))

    @classmethod
    def at(cls, file: str, span: Span, message: str, code: str = "invalid") -> KitError:
        return cls([KitIssue(file, span, message, code=code)])
