"""The benchmarks measure what they claim to (no timings asserted here)."""

from __future__ import annotations

from bench.kit_validate import make_kit

from sandkit.kits import load_text


def test_kit_validate_bench_uses_a_valid_300_line_kit() -> None:
    text = make_kit(300)
    assert 298 <= text.count("\n") <= 302
    loaded = load_text(text, "/bench/spec.yaml")
    assert len(loaded.kit.network.allow) > 200 and len(loaded.kit.credentials) == 4
    assert loaded.warnings == ()
