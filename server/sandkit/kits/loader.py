"""Read one kit: source → YAML with positions → args → version model → canonical Kit."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sandkit.kits import convert_v1, convert_v2, convert_v3, spec_v1, spec_v2, spec_v3
from sandkit.kits.args import GUEST_ENV, arg_values, substitute
from sandkit.kits.issues import KitError, KitIssue, Severity
from sandkit.kits.model import Kit, StaticFile
from sandkit.kits.source import KitSource, open_source
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import YamlFloat, YamlInt, parse

VERSIONS = ("1", "2", "3")


@dataclass(frozen=True)
class LoadedKit:
    kit: Kit
    source: KitSource
    warnings: tuple[KitIssue, ...]
    arg_values: dict[str, str]


class _ArgsV2(BaseModel):
    args: dict[str, spec_v2.ArgSpec] = {}


class _ArgsV3(BaseModel):
    args: dict[str, spec_v3.Arg] = {}


def load_kit(
    location: str | Path,
    args: Mapping[str, str] | None = None,
    *,
    require_args: bool = False,
    env: Mapping[str, str] | None = None,
) -> LoadedKit:
    """Load and validate a kit. Raises KitError holding every issue if it is invalid.

    ``args`` are the user's --kit-arg values; with ``require_args`` a required arg without
    a value is an error (composing a sandbox), otherwise a stand-in is used (validating).
    ``env`` holds runtime values for ``${{ kit.env.NAME }}`` (e.g. WORKSPACE_DIR), which
    win over the guest's defaults and the kit's arg exports."""
    return load_source(open_source(location), args, require_args=require_args, env=env)


def load_text(text: str, file: str, args: Mapping[str, str] | None = None) -> LoadedKit:
    """Validate spec text that is not on disk (an editor buffer). The kit's other files
    (its Dockerfile, what a COPY names, files/**) are read from its folder as saved, as
    `sandkit kit validate` would read them; a buffer never saved has none."""
    name = Path(file).parent.name or "kit"
    source = KitSource(file, file, text, name, folder=str(Path(file).parent))
    if Path(file).is_file():
        # A folder that is not a readable kit: the buffer alone says what it can.
        with contextlib.suppress(KitError):
            source = replace(open_source(file), text=text)
    return load_source(source, args)


def load_source(
    source: KitSource,
    args: Mapping[str, str] | None = None,
    *,
    require_args: bool = False,
    env: Mapping[str, str] | None = None,
) -> LoadedKit:
    ctx = Context(source.spec_file, parse(source.text, source.spec_file))
    kit, values = _load(source, ctx, dict(args or {}), require_args, dict(env or {}))
    if kit is None or ctx.failed:
        raise KitError(ctx.issues)
    warnings = tuple(i for i in ctx.issues if i.severity is Severity.WARNING)
    return LoadedKit(kit, source, warnings, values)


def _load(
    source: KitSource,
    ctx: Context,
    given: dict[str, str],
    require_args: bool,
    runtime_env: dict[str, str],
) -> tuple[Kit | None, dict[str, str]]:
    data = ctx.located.data
    if not isinstance(data, dict):
        ctx.error(
            (),
            "a kit spec is a YAML mapping that starts with schemaVersion, e.g. "
            "'schemaVersion: \"2\"'",
            code="not-a-kit",
        )
        return None, {}
    version = _version(data, ctx)
    if version is None:
        return None, {}
    decls: dict[str, spec_v2.ArgSpec] = {}
    if version != "1" and isinstance(data.get("args"), dict):
        model: type[_ArgsV2 | _ArgsV3] = _ArgsV3 if version == "3" else _ArgsV2
        block = ctx.validate(model, {"args": data["args"]})
        decls = dict(block.args) if block else {}
    values = arg_values(decls, given, ctx, require_all=require_args)
    env: dict[str, str] | None = None
    if version == "3":
        _literal_relations(data, ctx)
        exports = {
            d.env: values[n] for n, d in decls.items() if isinstance(d, spec_v3.Arg) and d.env
        }
        env = {**GUEST_ENV, **exports, **runtime_env}
    data = substitute(data, values, ctx, env=env)
    if ctx.failed:
        return None, values
    kit: Kit | None = None
    if version == "1":
        s1 = ctx.validate(spec_v1.KitV1, data)
        kit = convert_v1.convert(s1, ctx) if s1 else None
    elif version == "2":
        s2 = ctx.validate(spec_v2.KitV2, data)
        kit = convert_v2.convert(s2, ctx) if s2 else None
    else:
        s3 = ctx.validate(spec_v3.KitV3, data)
        kit = convert_v3.convert(s3, ctx, source, values) if s3 else None
    if kit is not None:
        statics = tuple(
            StaticFile(target=t, path=p, mode=mode, kit=kit.name)
            for t, p, mode in source.static_files()
        )
        kit = kit.model_copy(update={"static_files": statics})
    return kit, values


def _literal_relations(data: dict[str, Any], ctx: Context) -> None:
    """SPEC-v3 §5: what the resolver judges may not depend on the caller's arg values."""
    for key in ("requires", "integrates", "conflicts"):
        entries = data.get(key)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, str) and "${{" in entry:
                ctx.error(
                    (key, i),
                    f"'{key}' entries must stay literal: the resolver judges them, so they "
                    "may not depend on kit args (only 'provides' and 'version' may)",
                )


def _version(data: dict[str, Any], ctx: Context) -> str | None:
    if "schemaVersion" not in data:
        ctx.error(
            (),
            "missing schemaVersion: add 'schemaVersion: \"2\"' as the first line",
            code="missing-key",
        )
        return None
    raw = data["schemaVersion"]
    text = raw.raw if isinstance(raw, YamlInt | YamlFloat) else raw
    if not isinstance(text, str) or text not in VERSIONS:
        ctx.error(("schemaVersion",), f'schemaVersion must be "1", "2" or "3", got {raw!r}')
        return None
    data["schemaVersion"] = text
    return text


__all__ = ["LoadedKit", "load_kit", "load_source", "load_text"]
