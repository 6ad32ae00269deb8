"""The language server's pure cores: the YAML path at the cursor, and the edit that allows
a host in a kit while keeping everything else as written."""

from __future__ import annotations

import pytest

from sandkit.kits.loader import load_text
from sandkit.lsp.kitdocs.cursor import cursor_at, schema_version
from sandkit.lsp.kitdocs.edits import add_allowed_host, apply

DOC = """schemaVersion: "2"
kind: mixin
setup:
  install:
    - command: echo hi
      us
    - desc
  files:
  - path: /x
    mo
permissions:
  network:
    allow:
      - x
    de
kin
"""


@pytest.mark.parametrize(
    ("line", "path", "in_value", "prefix"),
    [
        (1, ("kind",), True, "mixin"),
        (4, ("setup", "install", 0, "command"), True, "echo hi"),
        (5, ("setup", "install", 0), False, "us"),
        (6, ("setup", "install", 0), False, "desc"),
        (9, ("setup", "files", 0), False, "mo"),  # compact list style
        (13, ("permissions", "network", "allow", 0), False, "x"),
        (14, ("permissions", "network"), False, "de"),
        (15, (), False, "kin"),
    ],
)
def test_cursor_path(line: int, path: tuple[object, ...], in_value: bool, prefix: str) -> None:
    text = DOC.splitlines()[line]
    cursor = cursor_at(DOC, line, len(text))
    assert (cursor.path, cursor.in_value, cursor.prefix) == (path, in_value, prefix)


def test_schema_version() -> None:
    assert schema_version('schemaVersion: "3"\n') == "3"
    assert schema_version("kind: mixin\n") == "2"  # the current format while none is written


HEAD = 'schemaVersion: "2"\nkind: mixin\nname: x\n'
CASES = {
    "block list, comments kept": (
        HEAD + "permissions:\n  network:\n    allow:\n      - a.com  # ours\n      # note\n"
        "      - b.com\n\nenvironment: {}\n",
        "      - b.com\n      - new.example.com\n",
    ),
    "flow list": (
        HEAD + "permissions:\n  network:\n    allow: [a.com]  # keep\n",
        "allow: [a.com, new.example.com]  # keep",
    ),
    "empty flow list": (
        HEAD + "permissions:\n  network:\n    allow: []\n",
        "allow: [new.example.com]",
    ),
    "no permissions": (HEAD, "permissions:\n  network:\n    allow:\n      - new.example.com\n"),
    "empty allow key": (HEAD + "permissions:\n  network:\n    allow:\n", "    allow:\n      - new"),
    "empty network key": (
        HEAD + "permissions:\n  network:\nsetup: {}\n",
        "  network:\n    allow:\n",
    ),
    "deny only": (
        HEAD + "permissions:\n  network:\n    deny: [x.com]\n",
        "    deny: [x.com]\n    allow:\n      - new.example.com\n",
    ),
    "v1": (
        'schemaVersion: "1"\nkind: mixin\nname: x\nnetwork:\n  allowedDomains:\n    - a.com\n',
        "    - a.com\n    - new.example.com\n",
    ),
    "v3 without a network policy": (
        'schemaVersion: "3"\nkind: mixin\ncapabilities:\n  - type: com.docker.sandbox/lifecycle@1\n'
        "    config: {}\n",
        "  - type: com.docker.sandbox/network-policy@1\n    config:\n      runtime:\n"
        "        allow:\n          - new.example.com\n",
    ),
    "no newline at the end": (HEAD + "permissions:\n  network:\n    allow: [a.com]", "a.com, new"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_allowing_a_host_keeps_the_rest_as_written(name: str) -> None:
    text, expected = CASES[name]
    insert = add_allowed_host(text, "new.example.com")
    assert insert is not None
    out = apply(text, insert)
    assert expected in out
    for line in text.splitlines():  # nothing else that was there is lost or changed
        assert line in out or "allow: [" in line
    loaded = load_text(out, "k/spec.yaml")
    assert "new.example.com" in [r.pattern for r in loaded.kit.network.allow]


def test_nothing_to_do_or_nothing_safe_to_do() -> None:
    allowed = HEAD + "permissions:\n  network:\n    allow: [new.example.com]\n"
    assert add_allowed_host(allowed, "new.example.com") is None
    assert add_allowed_host(HEAD + "permissions:\n  network: nope\n", "h.com") is None
    assert add_allowed_host("schemaVersion: [\n", "h.com") is None  # not YAML yet
