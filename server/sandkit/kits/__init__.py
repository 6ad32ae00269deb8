"""The kit engine: sbx kit specs (schemaVersion 1, 2, 3) → one validated canonical model,
and composition of an agent kit with mixins. Pure but for reading kit sources."""

from __future__ import annotations

from sandkit.kits.compose import compose
from sandkit.kits.issues import KitError, KitIssue, Severity, Span
from sandkit.kits.loader import LoadedKit, load_kit, load_text
from sandkit.kits.model import Kit, KitKind, ResolvedSandbox
from sandkit.kits.resolve import Resolution, load_ref, resolve

__all__ = [
    "Kit",
    "KitError",
    "KitIssue",
    "KitKind",
    "LoadedKit",
    "Resolution",
    "ResolvedSandbox",
    "Severity",
    "Span",
    "compose",
    "load_kit",
    "load_ref",
    "load_text",
    "resolve",
]
