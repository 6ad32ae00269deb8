"""Whatever text or YAML tree the loader is given, it either returns a kit or raises the
project's own positioned KitError: never anything else."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from sandkit.kits import KitError, load_text
from sandkit.kits.spec_v1 import KitV1
from sandkit.kits.spec_v2 import KitV2
from sandkit.kits.spec_v3 import KitV3

FILE = "/kits/fuzz/spec.yaml"


def _field_names(model: Any, seen: set[type] | None = None) -> set[str]:
    """Every key any spec model knows, so generated trees reach deep into validation."""
    seen = seen if seen is not None else set()
    if model in seen or not hasattr(model, "model_fields"):
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        for arg in _walk(info.annotation):
            names |= _field_names(arg, seen)
    return names


def _walk(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", ()) or ()
    return [annotation, *(x for a in args for x in _walk(a))]


KEYS = [
    *sorted(_field_names(KitV1) | _field_names(KitV2) | _field_names(KitV3)),
    "type",
    "config",
    "group",
    "install",
    "runtime",
    "allow",
    "deny",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "1",
            "2",
            "3",
            "sandbox",
            "mixin",
            "workload",
            "agent",
            "example.com",
            "**",
            "*.a.com",
            "10.0.0.0/8",
            "[::1]:443",
            "/abs/path",
            "0644",
            "Bearer %s",
            "${{ kit.args.x }}",
            "${{ kit.env.HOME }}",
            "com.docker.sandbox/lifecycle@1",
            "com.docker.sandbox/network-policy@2",
            "com.docker.sandbox/credential@1",
        ]
    ),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5
        ),
    ),
    max_leaves=40,
)


def _dump(data: Any) -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    return out.getvalue()


def _load(text: str) -> None:
    try:
        load_text(text, FILE)
    except KitError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.file == FILE and issue.message
            assert issue.span.line >= 0 and issue.span.column >= 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    _load(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES)
def test_arbitrary_yaml_trees(tree: Any) -> None:
    _load(_dump(tree))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["1", "2", "3"]),
    st.sampled_from(["sandbox", "mixin", "agent", "workload"]),
    st.dictionaries(st.sampled_from(KEYS), TREES, max_size=6),
)
def test_kit_shaped_trees(version: str, kind: str, body: dict[str, Any]) -> None:
    _load(_dump({"schemaVersion": version, "kind": kind, "name": "fuzz", **body}))


# Depth and size: pieces of YAML syntax repeated thousands of times (tens of KB of nesting,
# the shape that used to crash libyaml's composer or exhaust Python's stack), alias chains
# that nest deeper once expanded than the text does, and deep trees written by a dumper.
PIECES = st.sampled_from(
    ["[", "{", "]", "}", "- ", "? ", "a: ", "{a: ", "[a, ", ", ", "\n", "  ", "*a ", "&a ", "x"]
)
RUNS = st.lists(st.tuples(PIECES, st.integers(1, 20_000)), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["", 'schemaVersion: "2"\nkind: mixin\nname: x\nextra: ']), RUNS)
def test_deep_and_large_text(head: str, runs: list[tuple[str, int]]) -> None:
    _load(head + "".join(piece * count for piece, count in runs))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 80), st.integers(1, 60), st.sampled_from(["[%s]", "{k: %s}"]))
def test_alias_chains(anchors: int, depth: int, wrap: str) -> None:
    lines = ['schemaVersion: "2"', "kind: mixin", "name: x", "a0: &a0 x"]
    for i in range(1, anchors):
        node = f"*a{i - 1}"
        for _ in range(depth):
            node = wrap % node
        lines.append(f"a{i}: &a{i} {node}")
    _load("\n".join(lines) + "\n")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES, st.integers(0, 5_000), st.sampled_from(["[", "{k: ", "- "]))
def test_generated_trees_nested_deep(tree: Any, levels: int, opener: str) -> None:
    closer = {"[": "]", "{k: ": "}", "- ": ""}[opener]
    inner = json.dumps(tree)  # JSON is YAML's flow style
    _load(
        'schemaVersion: "2"\nkind: mixin\nname: x\nextra: '
        + opener * levels
        + inner
        + closer * levels
        + "\n"
    )
