"""The ignore rules' quick path (one regex that says "no pattern matches at all") answers
exactly as the gitignore spec does, for defaults, user patterns and negations alike."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sandkit.sync.ignore import DEFAULTS, Ignore

NAMES = st.sampled_from(
    ["a", "build", "node_modules", "x.pyc", "keep.pyc", ".venv", "docs", "b.md", ".sandkit-tmp-1"]
)
PATHS = st.lists(NAMES, min_size=1, max_size=4).map("/".join)
PATTERNS = st.lists(
    st.sampled_from(
        [
            "/build",
            "build/",
            "!keep.pyc",
            "docs/**/*.md",
            "*.md",
            "!node_modules/",
            "a/b.md",
            "# x",
            "",
        ]
    ),
    max_size=5,
)


@given(PATTERNS, PATHS, st.booleans())
def test_the_quick_path_agrees_with_the_spec(own: list[str], path: str, is_dir: bool) -> None:
    ignore = Ignore([*DEFAULTS, *own])
    assert ignore._any is not None  # the quick path is taken
    spec = ignore._spec.match_file(path + "/" if is_dir else path)
    assert ignore(path, is_dir) == spec


def test_what_the_defaults_leave_out() -> None:
    ignore = Ignore(list(DEFAULTS))
    assert ignore("src/node_modules", True) and ignore("a/x.pyc") and ignore(".sandkit-tmp-1")
    assert not ignore("src/main.py") and not ignore("node_modules") and not ignore("pyc")
