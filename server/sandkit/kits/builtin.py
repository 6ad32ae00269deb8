"""Built-in kits: the repository's kits/ folder (or its copy inside an installed wheel)."""

from __future__ import annotations

import os
from pathlib import Path

from sandkit.kits.issues import KitError, Span


def builtin_dir() -> Path:
    override = os.environ.get("SANDKIT_KITS_DIR")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "builtin_kits", package.parent.parent / "kits"):
        if candidate.is_dir():
            return candidate
    return package / "builtin_kits"


def builtin_names() -> list[str]:
    root = builtin_dir()
    return sorted(p.parent.name for p in root.glob("*/spec.yaml")) if root.is_dir() else []


def looks_like_path(ref: str) -> bool:
    if ref.startswith("git+"):  # a git reference (kits/gitref.py), not a path
        return False
    return "/" in ref or ref.endswith((".zip", ".yaml", ".yml")) or ref in (".", "..")


def resolve_ref(ref: str) -> Path:
    """A kit reference → a path: paths stay as they are, bare names are built-in kits,
    git+https://… references are fetched (kits/gitref.py)."""
    if ref.startswith("git+"):
        from sandkit.kits import gitref

        return gitref.fetch(ref)
    if looks_like_path(ref) or Path(ref).exists():
        return Path(ref)
    path = builtin_dir() / ref
    if not (path / "spec.yaml").is_file():
        known = ", ".join(builtin_names()) or "none found"
        raise KitError.at(
            ref,
            Span.point(),
            f"no built-in kit named '{ref}' (built-in: {known}); "
            "to use a kit directory, give its path, e.g. ./my-kit/",
            code="source",
        )
    return path
