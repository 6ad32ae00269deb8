"""Benchmark: validating a 300-line kit (target: under 20 ms, p95).

Peers measured in the same run: loading the same text as plain YAML, with no checks at
all, with ruamel.yaml's pure-Python and libyaml safe loaders (what any validator must at
least do). Prints timings and ratios; exits 1 if the target is missed.

    .venv/bin/python bench/kit_validate.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from ruamel.yaml import YAML

from sandkit.kits import load_text

TARGET_MS = 20.0


def make_kit(lines: int = 300) -> str:
    head = [
        'schemaVersion: "2"',
        "kind: sandbox",
        "name: bench",
        "description: a large kit",
        "sandbox:",
        "  image: docker/sandbox-templates:shell",
        "  entrypoint: [bash, -l]",
        "permissions:",
        "  network:",
        "    allow:",
    ]
    body: list[str] = []
    n = 0
    while len(head) + len(body) < lines - 40:
        body.append(f"      - host{n}.example.com")
        body.append(f"      - '*.svc{n}.example.org:443'")
        n += 1
    creds = ["credentials:"]
    for i in range(4):
        creds += [
            f"  - service: svc{i}",
            "    apiKey:",
            f"      name: SVC{i}_KEY",
            "      proxyManaged: true",
            "      inject:",
            f"        - domain: host{i}.example.com",
            "          header: Authorization",
            "          format: Bearer %s",
        ]
    rest = ["environment:", "  variables:"] + [f"    VAR_{i}: value-{i}" for i in range(4)]
    text = "\n".join(head + body + creds + rest) + "\n"
    assert abs(text.count("\n") - lines) <= 2, text.count("\n")
    return text


def measure(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm caches (pydantic validators, imports)
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    text = make_kit()
    yaml = YAML(typ="safe", pure=True)
    rows = [
        (
            "sandkit validate (parse + check + fold)",
            measure(lambda: load_text(text, "/bench/spec.yaml"), args.runs),
        ),
        ("ruamel.yaml safe load only (pure Python)", measure(lambda: yaml.load(text), args.runs)),
        (
            "ruamel.yaml safe load only (libyaml)",
            measure(lambda: YAML(typ="safe", pure=False).load(text), args.runs),
        ),
    ]
    ours = statistics.median(rows[0][1])
    print(f"kit validation, {text.count(chr(10))}-line kit, {args.runs} runs")
    print(f"{'what':<44} {'p50 ms':>8} {'p95 ms':>8} {'ratio':>7}")
    for name, samples in rows:
        med = statistics.median(samples)
        print(f"{name:<44} {med:8.2f} {p95(samples):8.2f} {ours / med:6.2f}x")
    ok = p95(rows[0][1]) < TARGET_MS
    print(f"target: p95 < {TARGET_MS:.0f} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
