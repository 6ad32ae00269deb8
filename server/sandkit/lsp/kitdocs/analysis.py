"""One kit document checked by the kit engine: issues, positions, and the outline.

Pure: text in, results out; the language server's handlers only convert and send."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from sandkit.kits.issues import KitError, KitIssue
from sandkit.kits.loader import LoadedKit, load_text
from sandkit.kits.yamlpos import Located, parse
from sandkit.lsp.kitdocs.cursor import schema_version

_KIT_HINT = re.compile(r"^schemaVersion\s*:", re.M)


def is_kit_document(path: str, text: str) -> bool:
    """A spec.yaml (sbx's name for a kit's spec), or any YAML that declares schemaVersion."""
    name = PurePath(path).name
    if name in ("spec.yaml", "spec.yml"):
        return True
    return name.endswith((".yaml", ".yml")) and bool(_KIT_HINT.search(text))


@dataclass(frozen=True)
class Analysis:
    version: str
    located: Located | None  # None when the text is not valid YAML
    issues: tuple[KitIssue, ...]
    loaded: LoadedKit | None  # None when the kit is invalid


def analyze(text: str, file: str) -> Analysis:
    version = schema_version(text)
    try:
        located = parse(text, file)
    except KitError as exc:
        return Analysis(version, None, exc.issues, None)
    try:
        loaded = load_text(text, file)
    except KitError as exc:
        return Analysis(version, located, exc.issues, None)
    return Analysis(version, located, loaded.warnings, loaded)
