"""Kit args: ``${{ kit.args.NAME }}`` references, substituted before the spec is decoded.

Substitution is structural (per string value, as sbx v3 does) so every node keeps its
position. A reference to an undeclared arg is an error where it is written."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sandkit.kits.spec_v2 import ArgSpec
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import Path, YamlInt

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_ARG = re.compile(r"kit\.args\.([A-Za-z_][A-Za-z0-9_-]*)")
_ENV = re.compile(r"kit\.env\.[A-Za-z_][A-Za-z0-9_]*")


def arg_values(
    decls: Mapping[str, ArgSpec], given: Mapping[str, str], ctx: Context, *, require_all: bool
) -> dict[str, str]:
    """The value of every declared arg: given, else default, else (validation only) a
    stand-in that satisfies its enum. Missing required args are errors if ``require_all``."""
    values: dict[str, str] = {}
    for name, spec in decls.items():
        if name in given:
            value = given[name]
            if spec.enum is not None and value not in spec.enum:
                ctx.error(
                    ("args", name),
                    f"arg '{name}' is '{value}', which is not one of: {', '.join(spec.enum)}",
                    at_key=True,
                )
            elif spec.pattern is not None and not re.fullmatch(spec.pattern, value):
                ctx.error(
                    ("args", name),
                    f"arg '{name}' is '{value}', which does not match '{spec.pattern}'",
                    at_key=True,
                )
            values[name] = value
        elif spec.default is not None:
            values[name] = spec.default
        elif require_all:
            ctx.error(
                ("args", name),
                f"arg '{name}' is required: pass --kit-arg {name}=VALUE",
                at_key=True,
                code="missing-arg",
            )
        else:
            values[name] = spec.enum[0] if spec.enum else f"arg-{name.lower()}"
    return values


def substitute(data: Any, values: Mapping[str, str], ctx: Context, path: Path = ()) -> Any:
    """Replace references in every string of ``data`` except under the top-level 'args'."""
    if isinstance(data, dict):
        return {
            k: v if (not path and k == "args") else substitute(v, values, ctx, (*path, k))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [substitute(v, values, ctx, (*path, i)) for i, v in enumerate(data)]
    if isinstance(data, str) and "${{" in data:
        try:
            text = substitute_text(data, values)
            ctx.from_args[path] = _ARG.findall(data)
        except KeyError as exc:
            ctx.error(path, str(exc.args[0]), code="undeclared-arg")
            return data
        whole = _EXPR.fullmatch(data.strip())
        if whole and _ARG.fullmatch(whole.group(1)) and text.isdigit():
            return YamlInt(int(text), text)  # a whole-value reference adopts the number's type
        return text
    return data


def substitute_text(text: str, values: Mapping[str, str]) -> str:
    """Substitute references in one text (also used for files shipped in a kit).

    Raises KeyError(message) for an undeclared arg or an unknown expression."""

    def replace(match: re.Match[str]) -> str:
        expr = match.group(1)
        arg = _ARG.fullmatch(expr)
        if arg:
            if arg.group(1) not in values:
                raise KeyError(
                    f"'${{{{ {expr} }}}}' refers to arg '{arg.group(1)}', which the "
                    f"kit does not declare under 'args'"
                )
            return values[arg.group(1)]
        if _ENV.fullmatch(expr):
            return match.group(0)  # v3: the sandbox's env, expanded in the guest at create
        raise KeyError(f"unknown expression '${{{{ {expr} }}}}': use '${{{{ kit.args.NAME }}}}'")

    return _EXPR.sub(replace, text)
