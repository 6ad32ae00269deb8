from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "kit-corpus"
BUILTIN = REPO / "kits"

WriteKit = Callable[..., Path]

# A mixin whose required credential (`bar`) has no value until a test sets one: shared by
# the terminal's and the editor's credential tests.
NEEDS_KEY_KIT = """\
schemaVersion: "2"
kind: mixin
name: needs-key
credentials:
  - service: bar
    required: true
    apiKey:
      name: BAR_KEY
      proxyManaged: true
      inject:
        - {domain: bar.test, header: X-Bar, format: "%s"}
  - service: optional-one
    apiKey:
      name: OPT_KEY
      inject:
        - {domain: bar.test, header: X-Opt, format: "%s"}
permissions:
  network:
    allow: [bar.test]
"""


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
