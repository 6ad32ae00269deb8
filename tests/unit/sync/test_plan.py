"""The three-way sync plan, case by case."""

from __future__ import annotations

import pytest

from sandkit.sync.plan import Action, Entry, Kind, Op, conflict_name, escapes, order, plan

A = Entry(Kind.FILE, 0o644, 1, "a")
B = Entry(Kind.FILE, 0o644, 1, "b")
C = Entry(Kind.FILE, 0o644, 1, "c")
A_EXEC = Entry(Kind.FILE, 0o755, 1, "a")
D = Entry(Kind.DIR, 0o755)
L_IN = Entry(Kind.LINK, target="sub/x")
L_OUT = Entry(Kind.LINK, target="../../etc/passwd")
UNKNOWN = Entry(Kind.FILE, 0o644, 1, None)

CASES = [
    # host, share, base -> op
    (A, A, A, None),
    (B, A, A, Op.TO_SHARE),
    (A, B, A, Op.TO_HOST),
    (None, A, A, Op.DELETE_SHARE),
    (A, None, A, Op.DELETE_HOST),
    (A, None, None, Op.TO_SHARE),
    (None, A, None, Op.TO_HOST),
    (B, B, A, Op.RECORD),
    (None, None, A, Op.FORGET),
    (B, C, A, Op.CONFLICT),
    (B, C, None, Op.CONFLICT),
    (None, B, A, Op.TO_HOST),  # deleted on the host, edited in the sandbox: the edit wins
    (B, None, A, Op.TO_SHARE),  # deleted in the sandbox, edited on the host
    (A_EXEC, A, A, Op.TO_SHARE),  # a mode change is a change
    (A_EXEC, B, A, Op.CONFLICT),
    (A_EXEC, Entry(Kind.FILE, 0o600, 1, "a"), A, Op.TO_SHARE),  # both chmod'ed: host wins
    (D, D, None, Op.RECORD),
    (D, A, None, Op.CONFLICT),  # a directory here, a file there
    (None, L_IN, None, Op.TO_HOST),
    (None, L_OUT, None, Op.REFUSE_LINK),
    (A, L_OUT, A, Op.REFUSE_LINK),
    (L_IN, None, None, Op.TO_SHARE),
    (UNKNOWN, UNKNOWN, UNKNOWN, Op.CONFLICT),  # unknown content: keep both rather than guess
]


@pytest.mark.parametrize(("host", "share", "base", "op"), CASES)
def test_decide(host: Entry | None, share: Entry | None, base: Entry | None, op: Op | None) -> None:
    def tree(e: Entry | None) -> dict[str, Entry]:
        return {"p": e} if e is not None else {}

    actions = plan(tree(host), tree(share), tree(base))
    assert [a.op for a in actions] == ([op] if op else [])


def test_order_deletes_deep_first_then_creates_shallow_first() -> None:
    actions = [
        Action(Op.TO_SHARE, "a/b/c"),
        Action(Op.DELETE_HOST, "x"),
        Action(Op.TO_SHARE, "a"),
        Action(Op.DELETE_SHARE, "y/z/w"),
        Action(Op.RECORD, "r"),
        Action(Op.TO_HOST, "a/b"),
    ]
    assert [a.path for a in order(actions)] == ["y/z/w", "x", "a", "a/b", "a/b/c", "r"]


def test_plan_limited_to_paths() -> None:
    host, share, base = {"a": A, "b": B}, {"a": B, "b": A}, {"a": A, "b": A}
    assert [(a.op, a.path) for a in plan(host, share, base, ["a"])] == [(Op.TO_HOST, "a")]


@pytest.mark.parametrize(
    ("path", "target", "out"),
    [
        ("x", "/etc/passwd", True),
        ("x", "../up", True),
        ("d/x", "../y", False),
        ("d/x", "../../y", True),
        ("x", "sub/../y", False),
        ("d/e/x", "../../f", False),
        ("x", "..", True),
    ],
)
def test_escapes(path: str, target: str, out: bool) -> None:
    assert escapes(path, target) is out


def test_conflict_names_say_what_they_are() -> None:
    assert conflict_name("notes.md", "S") == "notes.sandbox-conflict-S.md"
    assert conflict_name("d/a.tar.gz", "S") == "d/a.sandbox-conflict-S.tar.gz"
    assert conflict_name(".env", "S") == ".env.sandbox-conflict-S"
    assert conflict_name("Makefile", "S") == "Makefile.sandbox-conflict-S"
