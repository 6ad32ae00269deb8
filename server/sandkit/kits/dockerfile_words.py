"""Dockerfile words (kits/dockerfile.py's lexer, pure): the exec form's JSON array, and
the shell-like words of the other forms with Docker's quoting and $VAR expansion.

Every expansion is bounded: a word's expanded size (MAX_WORD) and ${…} nesting
(MAX_NESTING, the only recursion)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

MAX_WORD = 64 << 10  # one expanded word (a path, a value)
MAX_NESTING = 8  # ${A:-${B:-…}}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Fail = Callable[[str], Exception]  # the error for a message, naming the file and line


def json_form(rest: str) -> tuple[str, ...] | None:
    """The exec form ["a", "b"], or None when ``rest`` is not one (the shell form)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None  # Docker reads an invalid JSON array as the shell form
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


def words(
    text: str,
    scope: Mapping[str, str],
    fail: Fail,
    *,
    expand: bool,
    join: bool = False,
) -> list[str]:
    """Shell-like words: quotes group and are removed, the escape character quotes the
    next one, and (``expand``) $VAR, ${VAR}, ${VAR:-x}, ${VAR:+x} expand outside single
    quotes. ``join``: the whole text as one word (whitespace kept)."""
    out: list[str] = []
    cur: list[str] = []
    have = False
    quote = ""
    size = 0  # of the expanded values in the current word (the text itself is bounded)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                cur.append(c)
            i += 1
            continue
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if quote == '"' and nxt not in '"\\$':
                cur.append(c)
            cur.append(nxt)
            have = True
            i += 2
            continue
        if c in "'\"":
            if quote == c:
                quote = ""
            elif not quote:
                quote = c
            else:
                cur.append(c)
            have = True
            i += 1
            continue
        if c == "$" and expand:
            value, i = _dollar(text, i, scope, fail, 0)
            cur.append(value)
            have = True
            size += len(value)
            if size > MAX_WORD:
                raise fail(f"a word longer than {MAX_WORD >> 10} KiB")
            continue
        if c.isspace() and not quote and not join:
            if have or cur:
                out.append("".join(cur))
            cur, have, size = [], False, 0
            i += 1
            continue
        cur.append(c)
        have = True
        i += 1
    if quote:
        raise fail(f"an unclosed {quote} quote")
    if have or cur or join:
        out.append("".join(cur))
    return out


def expand(text: str, scope: Mapping[str, str], fail: Fail) -> str:
    """$VAR expansion alone (the words of an exec form are already unquoted)."""
    out: list[str] = []
    i = size = 0
    while i < len(text):
        if text[i] == "$":
            value, i = _dollar(text, i, scope, fail, 0)
            out.append(value)
            size += len(value)
            if size > MAX_WORD:
                raise fail(f"a word longer than {MAX_WORD >> 10} KiB")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _dollar(text: str, i: int, scope: Mapping[str, str], fail: Fail, depth: int) -> tuple[str, int]:
    """The value of the reference at text[i] == '$' and the index after it."""
    if depth > MAX_NESTING:
        raise fail(f"variables nested more than {MAX_NESTING} deep")
    j = i + 1
    if j < len(text) and text[j] == "{":
        end = j + 1
        match = NAME.match(text, end)
        if not match:
            raise fail(f"'{text[i : i + 20]}': a variable name is letters, digits, '_'")
        name, k = match[0], match.end()
        if k >= len(text):
            raise fail(f"'${{{name}': no closing '}}'")
        if text[k] == "}":
            return scope.get(name, ""), k + 1
        op = text[k : k + 2]
        if op not in (":-", ":+"):
            raise fail(
                f"'${{{name}{text[k : k + 2]}…}}': sandkit expands ${{NAME}}, ${{NAME:-default}} "
                "and ${NAME:+alternative} only",
            )
        k += 2
        word: list[str] = []
        while k < len(text) and text[k] != "}":
            if text[k] == "$":
                value, k = _dollar(text, k, scope, fail, depth + 1)
                word.append(value)
                if sum(map(len, word)) > MAX_WORD:
                    raise fail(f"a word longer than {MAX_WORD >> 10} KiB")
            elif text[k] == "\\" and k + 1 < len(text):
                word.append(text[k + 1])
                k += 2
            else:
                word.append(text[k])
                k += 1
        if k >= len(text):
            raise fail(f"'${{{name}{op}…': no closing '}}'")
        alt = "".join(word)
        present = bool(scope.get(name))
        value = (scope[name] if present else alt) if op == ":-" else (alt if present else "")
        return value, k + 1
    match = NAME.match(text, j)
    if not match:
        return "$", j
    return scope.get(match[0], ""), match.end()
