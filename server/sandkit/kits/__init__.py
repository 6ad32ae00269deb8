"""The kit engine: sbx kit specs (schemaVersion 1, 2, 3) → one validated canonical model,
and composition of an agent kit with mixins. Pure but for reading kit sources.

The names below load on first use: the models (pydantic) take ~0.15 s to import, which
`sandkit run` on a warm-pool sandbox does not pay (its supervisor resolves the kits)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandkit.kits.composition import compose
    from sandkit.kits.issues import KitError, KitIssue, Severity, Span
    from sandkit.kits.loader import LoadedKit, load_kit, load_text
    from sandkit.kits.model import Kit, KitKind, ResolvedSandbox
    from sandkit.kits.resolution import Resolution, load_ref, resolve

_WHERE = {
    "compose": "composition",
    "KitError": "issues",
    "KitIssue": "issues",
    "Severity": "issues",
    "Span": "issues",
    "LoadedKit": "loader",
    "load_kit": "loader",
    "load_text": "loader",
    "Kit": "model",
    "KitKind": "model",
    "ResolvedSandbox": "model",
    "Resolution": "resolution",
    "load_ref": "resolution",
    "resolve": "resolution",
}
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sandkit.kits' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sandkit.kits.{module}"), name)
