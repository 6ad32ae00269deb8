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
_ENV = re.compile(r"kit\.env\.([A-Za-z_][A-Za-z0-9_]*)")

# The final environment of sandkit's guest before any kit adds to it (the agent user's
# login environment in the image sandkit builds), for ${{ kit.env.NAME }} (SPEC-v3 §6.1).
GUEST_ENV = {
    "HOME": "/home/agent",
    "USER": "agent",
    "LOGNAME": "agent",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
# Set by the runtime when a sandbox is created; unknown to a kit loaded on its own, so a
# reference to one is left as written unless the caller supplies its value.
RUNTIME_ENV = ("WORKSPACE_DIR",)


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


def substitute(
    data: Any,
    values: Mapping[str, str],
    ctx: Context,
    path: Path = (),
    env: Mapping[str, str] | None = None,
) -> Any:
    """Replace references in every string of ``data`` except under the top-level 'args'.

    With ``env`` (schemaVersion 3), ``${{ kit.env.NAME }}`` is expanded too, in capability
    config strings only (never keys, types or display fields), in the same pass as the
    args so that an arg's value can never introduce an environment reference."""
    if isinstance(data, dict):
        return {
            k: v if (not path and k == "args") else substitute(v, values, ctx, (*path, k), env)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [substitute(v, values, ctx, (*path, i), env) for i, v in enumerate(data)]
    if isinstance(data, str) and "${{" in data:
        scoped = env if env is not None and in_config(path) else None
        try:
            text = substitute_text(data, values, scoped, templates_refused=env is not None)
            ctx.from_args[path] = _ARG.findall(data)
        except KeyError as exc:
            ctx.error(path, str(exc.args[0]), code="undeclared-arg")
            return data
        whole = _EXPR.fullmatch(data.strip())
        if whole and _ARG.fullmatch(whole.group(1)) and text.isdigit():
            return YamlInt(int(text), text)  # a whole-value reference adopts the number's type
        return text
    return data


def in_config(path: Path) -> bool:
    """Whether ``path`` is inside a v3 capability's config (a group member's included)."""
    if len(path) >= 3 and path[0] == "capabilities" and path[2] == "config":
        return True
    return (
        len(path) >= 6
        and path[0] == "capabilities"
        and path[2:4] == ("group", "capabilities")
        and path[5] == "config"
    )


def substitute_text(
    text: str,
    values: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    *,
    templates_refused: bool = False,
) -> str:
    """Substitute references in one text (also used for files shipped in a kit).

    ``env`` given: ``${{ kit.env.NAME }}`` becomes the variable's value (a name sandkit
    cannot know yet, like WORKSPACE_DIR, stays as written); otherwise it stays as written.
    With ``templates_refused`` an inserted value holding '${{' is an error: values are
    not templates. Raises KeyError(message) for an undeclared arg, a missing variable or
    an unknown expression."""

    def inserted(value: str, what: str) -> str:
        if templates_refused and "${{" in value:
            raise KeyError(f"{what} contains '${{{{': inserted values are not templates")
        if "\0" in value:
            raise KeyError(f"{what} contains a NUL byte")
        return value

    def replace(match: re.Match[str]) -> str:
        expr = match.group(1)
        arg = _ARG.fullmatch(expr)
        if arg:
            if arg.group(1) not in values:
                raise KeyError(
                    f"'${{{{ {expr} }}}}' refers to arg '{arg.group(1)}', which the "
                    f"kit does not declare under 'args'"
                )
            return inserted(values[arg.group(1)], f"the value of arg '{arg.group(1)}'")
        var = _ENV.fullmatch(expr)
        if var:
            name = var.group(1)
            if env is None or (name in RUNTIME_ENV and name not in env):
                return match.group(0)
            if name not in env:
                raise KeyError(
                    f"'${{{{ {expr} }}}}' names variable {name}, which the sandbox's "
                    f"environment does not have: sandkit's guest sets {', '.join(GUEST_ENV)}, "
                    "and a kit arg adds one with 'env: NAME'"
                )
            return inserted(env[name], f"variable {name}")
        raise KeyError(
            f"unknown expression '${{{{ {expr} }}}}': use '${{{{ kit.args.NAME }}}}' "
            "or '${{ kit.env.NAME }}'"
        )

    return _EXPR.sub(replace, text)
