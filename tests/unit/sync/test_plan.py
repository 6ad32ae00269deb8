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
    # The host deleted the file; the sandbox, meanwhile, made a link there.
    (None, L_OUT, A, Op.REFUSE_LINK),
    (None, L_IN, A, Op.TO_HOST),
    (None, L_OUT, L_IN, Op.REFUSE_LINK),
    (L_IN, L_OUT, L_IN, Op.REFUSE_LINK),
    (D, D, D, None),
    (L_IN, L_IN, L_IN, None),
    (L_IN, L_IN, None, Op.RECORD),
    (L_OUT, L_IN, L_IN, Op.TO_SHARE),  # the host's own links are the host's business
    (A, D, None, Op.CONFLICT),  # a file here, a directory there
    (A, D, B, Op.CONFLICT),
    (A, D, A, Op.TO_HOST),  # the sandbox replaced an untouched file: the guard judges it
    (D, None, D, Op.DELETE_HOST),
    (A, A_EXEC, A, Op.TO_HOST),  # the sandbox's chmod reaches the host (cleaned there)
]


def _winner(op: Op | None, host: Entry | None, share: Entry | None) -> Entry | None:
    """The entry an action carries: the side whose version is about to be everywhere."""
    if op in (Op.TO_HOST, Op.REFUSE_LINK):
        return share
    if op in (Op.TO_SHARE, Op.RECORD, Op.CONFLICT):
        return host
    return None


@pytest.mark.parametrize(("host", "share", "base", "op"), CASES)
def test_decide(host: Entry | None, share: Entry | None, base: Entry | None, op: Op | None) -> None:
    def tree(e: Entry | None) -> dict[str, Entry]:
        return {"p": e} if e is not None else {}

    actions = plan(tree(host), tree(share), tree(base))
    expected = [Action(op, "p", _winner(op, host, share))] if op else []
    assert actions == expected


@pytest.mark.parametrize(
    ("target", "op"),
    [("../y", Op.TO_HOST), ("../../y", Op.REFUSE_LINK), ("/d/y", Op.REFUSE_LINK)],
)
def test_a_link_is_judged_from_its_own_folder(target: str, op: Op) -> None:
    """`d/x -> ../y` stays in the workspace, `d/x -> ../../y` leaves it: on a fresh path
    and on a path whose file the host deleted while the sandbox made the link."""
    link = Entry(Kind.LINK, target=target)
    bases: list[dict[str, Entry]] = [{}, {"d/x": A}]
    for base in bases:
        assert plan({}, {"d/x": link}, base) == [Action(op, "d/x", link)]


def test_entries_compare_by_what_they_are() -> None:
    assert D.same(Entry(Kind.DIR, 0o700))  # a directory's mode is not synced as a change
    assert L_IN.same(Entry(Kind.LINK, target="sub/x"))
    assert not L_IN.same(L_OUT) and not L_IN.same(None) and not L_IN.same(A)
    assert A.same(Entry(Kind.FILE, 0o100644, 1, "a"))  # only the permission bits count
    assert not A.same(Entry(Kind.FILE, 0o644, 2, "a"))
    assert not A.same(B) and not A.same(A_EXEC) and not UNKNOWN.same(UNKNOWN)
    assert A.same_content(A_EXEC) and not A.same_content(B) and not A.same_content(None)
    assert not UNKNOWN.same_content(UNKNOWN) and not D.same_content(D)


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


def test_parents_are_the_folders_above_outermost_first() -> None:
    from sandkit.sync.plan import parents

    assert parents("a/b/c.txt") == ["a", "a/b"]
    assert parents("top.txt") == []
