from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "kit-corpus"
BUILTIN = REPO / "kits"

WriteKit = Callable[..., Path]


@pytest.fixture
def write_kit(tmp_path: Path) -> WriteKit:
    """Write a kit directory from spec text (dedented); returns the directory."""

    def write(text: str, name: str = "kit", files: dict[str, str] | None = None) -> Path:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        (root / "spec.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
        for rel, content in (files or {}).items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        return root

    return write
