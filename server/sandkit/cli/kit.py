"""`sandkit kit …`: validate, inspect, schema, migrate, ls."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from sandkit.cli.output import dump
from sandkit.hostconfig import registry_args
from sandkit.kits import KitError, KitIssue, ResolvedSandbox, gitref, load_ref, resolve
from sandkit.kits.builtin import builtin_dir, builtin_names, resolve_ref
from sandkit.kits.images import BASE_DOCKER, NEEDS_IMAGE
from sandkit.kits.issues import NEEDS_SUPPORT, Severity
from sandkit.kits.loader import LoadedKit, load_kit
from sandkit.ui import table


def run(args: argparse.Namespace) -> int:
    handler = {
        "validate": validate,
        "inspect": inspect,
        "schema": schema,
        "migrate": migrate,
        "ls": list_kits,
    }[args.verb]
    return handler(args)


def _print_issues(issues: tuple[KitIssue, ...]) -> None:
    for issue in issues:
        print(issue.format(), file=sys.stderr)


def _issue_json(i: KitIssue) -> dict[str, Any]:
    return {
        "file": i.file,
        "line": i.span.line + 1,
        "column": i.span.column + 1,
        "endLine": i.span.end_line + 1,
        "endColumn": i.span.end_column + 1,
        "severity": str(i.severity),
        "code": i.code,
        "message": i.message,
    }


# `kit validate` exit statuses: every kit valid; some kit invalid; every kit valid but
# some need capabilities (or kind: set) sandkit does not implement.
VALID, INVALID, NEEDS_UNSUPPORTED = 0, 1, 3


def unsupported_needs(issues: tuple[KitIssue, ...]) -> list[str] | None:
    """What a kit needs that sandkit lacks, when that is all that is wrong with it."""
    errors = [i for i in issues if i.severity is Severity.ERROR]
    if not errors or any(i.code not in NEEDS_SUPPORT for i in errors):
        return None
    return list(dict.fromkeys(i.subject or i.code for i in errors))


def validate(args: argparse.Namespace) -> int:
    given = dict(args.kit_arg)
    results: list[dict[str, Any]] = []
    invalid = needs_support = False
    for ref in args.paths:
        try:
            loaded = load_ref(ref, given)
        except KitError as exc:
            result = _refused(ref, exc.issues, args.json)
        else:
            result = _loaded(ref, loaded, args.json)
        results.append(result)
        invalid = invalid or not result["valid"]
        needs_support = needs_support or "unsupported" in result
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return INVALID if invalid else NEEDS_UNSUPPORTED if needs_support else VALID


def _refused(ref: str, issues: tuple[KitIssue, ...], as_json: bool) -> dict[str, Any]:
    """A kit that did not load: invalid, or valid but needing what sandkit lacks."""
    needs = unsupported_needs(issues)
    result: dict[str, Any] = {
        "kit": ref,
        "valid": needs is not None,
        "issues": [_issue_json(i) for i in issues],
    }
    if needs is not None:
        result["unsupported"] = needs
    if not as_json:
        _print_issues(issues)
        if needs is not None:
            print(
                f"{ref}: valid, but needs what sandkit does not implement: {', '.join(needs)}",
                file=sys.stderr,
            )
        else:
            errors = sum(i.severity is Severity.ERROR for i in issues)
            print(f"{ref}: invalid ({errors} error(s))", file=sys.stderr)
    return result


def _loaded(ref: str, loaded: LoadedKit, as_json: bool) -> dict[str, Any]:
    kit = loaded.kit
    # An image only a later sandkit provides: the kit loads (and composes), but
    # cannot start here yet.
    image = kit.agent.image if kit.agent else None
    needs_image = any(i.code == NEEDS_IMAGE for i in loaded.warnings)
    lacking = [f"{BASE_DOCKER} (image {image})"] if needs_image else []
    if not as_json:
        _print_issues(loaded.warnings)
        if lacking:
            print(
                f"{ref}: valid, but needs what sandkit does not implement: {', '.join(lacking)}",
                file=sys.stderr,
            )
        else:
            print(f"{ref}: valid {kit.kind} kit '{kit.name}' (schemaVersion {kit.schema_version})")
    return {
        "kit": ref,
        "valid": True,
        "name": kit.name,
        "kind": str(kit.kind),
        "schemaVersion": kit.schema_version,
        "issues": [_issue_json(i) for i in loaded.warnings],
        **({"unsupported": lacking} if lacking else {}),
    }


def inspect(args: argparse.Namespace) -> int:
    given = dict(args.kit_arg)
    if args.kit and not args.resolved:
        print("sandkit: --kit adds mixins to a composition: add --resolved", file=sys.stderr)
        return 2
    if args.resolved:
        resolution = resolve(args.target, args.kit, given, defaults=registry_args())
        _print_issues(resolution.warnings)
        merged = resolution.sandbox.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        head: dict[str, Any] = {k: merged.pop(k) for k in ("agentName", "kits", "agent")}
        data: dict[str, Any] = {**head, **_run_as(resolution.sandbox), **merged}
    else:
        loaded = load_ref(args.target, given)
        _print_issues(loaded.warnings)
        data = loaded.kit.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    sources = [f for f in map(gitref.fetched, [args.target, *args.kit]) if f is not None]
    if sources:
        data["fetched"] = sources
    dump(data, args.json)
    return 0


def _run_as(sandbox: ResolvedSandbox) -> dict[str, Any]:
    """The shape and guest image a sandbox of this composition gets without flags, and
    why (`run --cpus/--memory` override the shape)."""
    from sandkit.kits.images import classify
    from sandkit.kits.shape import choose
    from sandkit.vm.hostcheck import host_memory_mib

    resources = sandbox.agent.resources
    host_cpus = len(os.sched_getaffinity(0))
    shape = choose(None, None, resources, sandbox.agent_name, host_cpus, host_memory_mib())
    choice = classify(sandbox.agent.image)
    image = {"use": choice.image, "kind": str(choice.kind), "why": choice.why}
    out: dict[str, Any] = {"shape": shape.describe(), "image": image}
    if shape.notes:
        out["shape"]["notes"] = list(shape.notes)
    return out


def schema(args: argparse.Namespace) -> int:
    from sandkit.kits.schema import kit_json_schema

    dump(kit_json_schema(), as_json=True)
    return 0


def migrate(args: argparse.Namespace) -> int:
    from sandkit.kits.migrate import migrate as to_v2
    from sandkit.yamlout import dump_yaml

    loaded = load_kit(resolve_ref(args.path))
    if loaded.kit.schema_version != "1":
        print(
            f"{loaded.source.spec_file}: already schemaVersion {loaded.kit.schema_version}; "
            "nothing to migrate",
            file=sys.stderr,
        )
        return 0
    doc, notes = to_v2(loaded)
    for note in notes:
        print(f"{loaded.source.spec_file}: note: {note}", file=sys.stderr)
    dump_yaml(
        doc, sys.stdout, header=f"# migrated from schemaVersion 1 ({loaded.source.spec_file})\n"
    )
    return 0


def list_kits(args: argparse.Namespace) -> int:
    rows = []
    for name in builtin_names():
        kit = load_kit(builtin_dir() / name).kit
        rows.append((kit.name, str(kit.kind), kit.description or kit.display_name or ""))
    first_lines = [(n, k, d.strip().splitlines()[0] if d.strip() else "") for n, k, d in rows]
    print(table(first_lines, ("NAME", "KIND", "DESCRIPTION")))
    return 0
