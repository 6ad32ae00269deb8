"""Kit-to-kit relations of schemaVersion 3 (SPEC-v3 §5), pure: the grammar of
``provides``/``requires``/``integrates``/``conflicts``, version order, and the closed-set
resolution of §5.3 that orders a composition by its dependency graph.

Parsing raises ValueError with a message for people; resolution returns problems as
(origin, message) pairs so composition can position them."""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sandkit.kits import model as m

DEFAULT_NAMESPACE = "com.docker.kit"
# Filled by publishing from package databases (§9.6); an author may not write them.
DERIVED_NAMESPACES = ("deb", "apk")
OPS = (">=", "<=", ">", "<", "=")

_BASE = re.compile(r"[a-z0-9](?:[a-z0-9.+-]*[a-z0-9+])?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
VERSION = re.compile(r"[0-9]+(?:\.[0-9A-Za-z-]+)*")
_CONSTRAINT = re.compile(r"\s*(>=|<=|>|<|=)\s*(\S+)\s*")


def parse_name(text: str) -> str:
    """Check a capability name (§5.1) and return it normalized."""
    namespace, slash, base = text.partition("/") if "/" in text else ("", "", text)
    if not _BASE.fullmatch(base):
        raise ValueError(
            f"'{text}' is not a capability name: lowercase letters, digits, '-', '.' and '+', "
            "starting with a letter or digit and not ending in '-' or '.'"
        )
    if not slash:
        return f"{DEFAULT_NAMESPACE}/{base}"
    if namespace in DERIVED_NAMESPACES:
        raise ValueError(
            f"'{text}': the '{namespace}/' namespace is derived from package databases when a "
            "kit is published and may not be written by hand; use a name of your own"
        )
    labels = namespace.split(".")
    if len(labels) < 2 or len(namespace) > 253 or not all(_LABEL.fullmatch(x) for x in labels):
        raise ValueError(
            f"'{text}': a namespace is reverse-DNS, two labels or more (e.g. 'com.example/"
            f"{base}'), or none for the default namespace"
        )
    return f"{namespace}/{base}"


def parse_version(text: str) -> str:
    if not VERSION.fullmatch(text):
        raise ValueError(f"version '{text}' must look like 1.2.3 (digits first, no leading 'v')")
    return text


def _key(version: str) -> tuple[tuple[int, int, str], ...]:
    # Numeric segments order numerically and before text ones; text orders lexically.
    return tuple((0, int(s), "") if s.isdigit() else (1, 0, s) for s in version.split("."))


def compare(a: str, b: str) -> int:
    """-1, 0 or 1: per-segment, numeric segments numerically, others lexically (§5.2)."""
    ka, kb = _key(a), _key(b)
    return (ka > kb) - (ka < kb)


def parse_provide(text: str) -> tuple[str, str | None]:
    """'gh' or 'gh@2.98.0' → (normalized name, version or None)."""
    name, at, version = text.strip().partition("@")
    return parse_name(name.strip()), parse_version(version.strip()) if at else None


def parse_requirement(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """'node >= 20.0.0, < 21.0.0' → (normalized name, ((op, version), ...)).

    Raises ValueError for a bad name, operator or version, and for a constraint set no
    version could meet (conflicting pins, inverted or exclusively touching bounds)."""
    stripped = text.strip()
    split = next((i for i, c in enumerate(stripped) if c in "<>=" or c.isspace()), None)
    name = stripped if split is None else stripped[:split]
    rest = "" if split is None else stripped[split:].strip()
    normalized = parse_name(name)
    if not rest:
        return normalized, ()
    constraints: list[tuple[str, str]] = []
    for part in rest.split(","):
        match = _CONSTRAINT.fullmatch(part)
        if not match:
            raise ValueError(
                f"'{text}': write constraints as 'NAME OP VERSION[, OP VERSION]' with OP one "
                f"of {', '.join(OPS)} (e.g. 'node >= 20.0.0, < 21.0.0')"
            )
        constraints.append((match[1], parse_version(match[2])))
    if not _satisfiable(constraints):
        raise ValueError(f"'{text}': no version can meet all of these constraints")
    return normalized, tuple(constraints)


def parse_conflict(text: str) -> str:
    if any(c in text for c in "@<>=,"):
        raise ValueError(f"'{text}': a conflicts entry is a bare name, without a version")
    return parse_name(text.strip())


def _satisfiable(constraints: Sequence[tuple[str, str]]) -> bool:
    low: tuple[str, bool] | None = None  # (version, inclusive)
    high: tuple[str, bool] | None = None
    for op, version in constraints:
        if op in (">=", ">", "="):
            inclusive = op != ">"
            if (
                low is None
                or compare(version, low[0]) > 0
                or (compare(version, low[0]) == 0 and not inclusive)
            ):
                low = (version, inclusive)
        if op in ("<=", "<", "="):
            inclusive = op != "<"
            if (
                high is None
                or compare(version, high[0]) < 0
                or (compare(version, high[0]) == 0 and not inclusive)
            ):
                high = (version, inclusive)
    if low is None or high is None:
        return True
    order = compare(low[0], high[0])
    return order < 0 or (order == 0 and low[1] and high[1])


def satisfies(version: str | None, constraints: Sequence[m.Constraint]) -> bool:
    """An unversioned provide satisfies only an unconstrained requirement (§5.2)."""
    if not constraints:
        return True
    if version is None:
        return False
    checks = {
        ">=": lambda c: c >= 0,
        ">": lambda c: c > 0,
        "<=": lambda c: c <= 0,
        "<": lambda c: c < 0,
        "=": lambda c: c == 0,
    }
    return all(checks[c.op](compare(version, c.version)) for c in constraints)


def show(req: m.Requirement) -> str:
    return req.text.strip()


@dataclass(frozen=True)
class Problem:
    origin: m.Origin
    message: str


def resolve(kits: Sequence[m.Kit]) -> tuple[list[int], list[Problem]]:
    """Judge ``kits`` (in the order they were named) as a closed set (§5.3).

    Returns the composition order as indexes into ``kits`` — providers before the kits
    that require or integrate with them, otherwise the order given — and the problems."""
    problems: list[Problem] = []
    owner = _providers(kits, problems)
    edges: dict[int, set[int]] = {i: set() for i in range(len(kits))}
    for i, kit in enumerate(kits):
        _link_requires(i, kit, kits, owner, edges, problems)
        _link_integrates(i, kit, kits, owner, edges, problems)
        _check_conflicts(i, kit, kits, owner, problems)
    order, cycle = _topological(len(kits), edges)
    if cycle:
        names = ", ".join(f"'{kits[i].name}'" for i in cycle)
        problems.append(
            Problem(
                kits[cycle[0]].origin,
                f"kits {names} require each other in a circle, so no order can put providers first",
            )
        )
    return order, problems


_Owners = dict[str, tuple[int, m.Provide]]


def _providers(kits: Sequence[m.Kit], problems: list[Problem]) -> _Owners:
    """Each provided name's one provider (the first); a second provider is a problem."""
    owner: _Owners = {}
    for i, kit in enumerate(kits):
        for provide in kit.provides:
            first = owner.get(provide.name)
            if first is not None and first[0] != i:
                problems.append(
                    Problem(
                        provide.origin,
                        f"'{provide.text}' is also provided by '{kits[first[0]].name}' "
                        f"({first[1].origin}); one name has one provider, so compose only "
                        "one of these kits",
                    )
                )
            elif first is None:
                owner[provide.name] = (i, provide)
    return owner


def _link_requires(
    i: int,
    kit: m.Kit,
    kits: Sequence[m.Kit],
    owner: _Owners,
    edges: dict[int, set[int]],
    problems: list[Problem],
) -> None:
    for req in kit.requires:
        found = owner.get(req.name)
        if found is None or found[0] == i:
            own = " (a kit cannot meet its own requirement)" if found else ""
            problems.append(
                Problem(
                    req.origin,
                    f"requires '{show(req)}', which no other kit in this sandbox provides"
                    f"{own}: add a kit that provides it with --kit",
                )
            )
        elif not satisfies(found[1].version, req.constraints):
            problems.append(Problem(req.origin, _unmet("requires", req, kits, found)))
        else:
            edges[found[0]].add(i)


def _link_integrates(
    i: int,
    kit: m.Kit,
    kits: Sequence[m.Kit],
    owner: _Owners,
    edges: dict[int, set[int]],
    problems: list[Problem],
) -> None:
    for req in kit.integrates:
        found = owner.get(req.name)
        if found is None or found[0] == i:
            continue  # an absent provider is fine
        if not satisfies(found[1].version, req.constraints):
            problems.append(Problem(req.origin, _unmet("integrates with", req, kits, found)))
        else:
            edges[found[0]].add(i)


def _check_conflicts(
    i: int, kit: m.Kit, kits: Sequence[m.Kit], owner: _Owners, problems: list[Problem]
) -> None:
    for conflict in kit.conflicts:
        found = owner.get(conflict.name)
        if found is not None and found[0] != i:
            problems.append(
                Problem(
                    conflict.origin,
                    f"conflicts with '{show(conflict)}', which '{kits[found[0]].name}' "
                    f"provides ({found[1].origin}): compose only one of them",
                )
            )


def _unmet(
    verb: str, req: m.Requirement, kits: Sequence[m.Kit], found: tuple[int, m.Provide]
) -> str:
    index, provide = found
    at = f"version {provide.version}" if provide.version else "no version"
    hint = (
        "an unversioned provide meets only a requirement without constraints"
        if provide.version is None
        else "use a kit at a version that meets it"
    )
    return (
        f"{verb} '{show(req)}', but '{kits[index].name}' provides it at {at} "
        f"({provide.origin}): {hint}"
    )


def _topological(count: int, edges: dict[int, set[int]]) -> tuple[list[int], list[int]]:
    """Kahn's algorithm taking the earliest-named ready kit each time (a stable order).
    Returns the order and, if there is a cycle, the kits left in it."""
    indegree = dict.fromkeys(range(count), 0)
    for targets in edges.values():
        for t in targets:
            indegree[t] += 1
    ready = [i for i in range(count) if indegree[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for t in sorted(edges[i]):
            indegree[t] -= 1
            if indegree[t] == 0:
                heapq.heappush(ready, t)
    left = sorted(i for i in range(count) if indegree[i] > 0)
    return order + left, left
