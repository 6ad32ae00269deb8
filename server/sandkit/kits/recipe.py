"""A v3 workload's recipe (its Dockerfile, or `build:`) replayed on sandkit's guest:
kits/dockerfile.py reads it; here its RUN/COPY/WORKDIR steps become install steps, ENV
the environment, ENTRYPOINT/CMD the agent's command (SPEC-v3 §3). FROM must be one of
Docker's sandbox templates: the template's agent comes from sandkit's built-in kit of it."""

from __future__ import annotations

import base64
import fnmatch
import itertools
import platform
import posixpath
import re
from dataclasses import dataclass, field

from sandkit.guestuser import AGENT_UID
from sandkit.kits import dockerfile, dockerignore, images
from sandkit.kits import model as m
from sandkit.kits import spec_v3 as v3
from sandkit.kits.convert_common import PROXY_VARS, check_env_name
from sandkit.kits.source import MAX_KIT_FILES, KitSource
from sandkit.kits.validation import Context
from sandkit.kits.yamlpos import Path

ORIGIN_KEY = ("kind",)  # where a recipe found beside the spec is reported
RECIPE = "dockerfile"  # an issue code: the workload's Dockerfile cannot be replayed


@dataclass
class Replay:
    """What a workload's Dockerfile gives the kit (kits/dockerfile.py read it)."""

    install: list[m.Command] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    entrypoint: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    missing: str | None = None  # why the agent has no command (no Dockerfile)


COMPANION = ".dockerfile"
# A COPY's files travel base64 in one install step's argv: one argument at most 128 KiB,
# all of them well under the guest's 2 MiB ARG_MAX.
MAX_COPY_FILE_BYTES = 64 << 10
MAX_COPY_BYTES = 512 << 10
MAX_COPY_FILES = 256
# All of a recipe's COPYs together: a stranger's kit (or one opened in the editor) must
# not make sandkit list or read without bound.
MAX_RECIPE_SOURCES = 256
MAX_RECIPE_COPY_BYTES = 4 << 20
_ROOT_NAMES = {"root": "0", "0": "0"}
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_WORKDIR_SCRIPT = '[ -d "$1" ] || { mkdir -p "$1" && chown "$2" "$1"; }'
# $1 the owner, then (path, mode, base64 contents, name) for each file: with a name, a
# path that is a folder in the guest already gets the file inside it, as Docker does.
_COPY_SCRIPT = (
    "owner=$1; shift; while [ $# -ge 4 ]; do p=$1; "
    'if [ -n "$4" ] && [ -d "$p" ]; then p="$p/$4"; fi; '
    'mkdir -p "$(dirname "$p")" && printf %s "$3" | base64 -d > "$p" '
    '&& chmod "$2" "$p" && chown "$owner" "$p" || exit 1; shift 4; done'
)


def replay_recipe(
    spec: v3.KitV3,
    ctx: Context,
    source: KitSource,
    arg_values: dict[str, str],
    is_agent: bool,
    kit: str,
) -> Replay:
    """A workload's recipe replayed on sandkit's guest: its RUN/COPY steps become install
    steps, ENV the environment, ENTRYPOINT/CMD the agent's command (SPEC-v3 §3)."""
    if not is_agent:
        if spec.build is not None or spec.dockerfile is not None:
            key = "build" if spec.build is not None else "dockerfile"
            ctx.warn(
                (key,),
                f"a mixin's '{key}' is not replayed by sandkit (only a workload's is); "
                "install its tools with lifecycle@1 install hooks",
            )
        return Replay()
    found = _find_recipe(spec, ctx, source)
    if found is None:
        return Replay()
    if isinstance(found, _Missing):
        ctx.warn(found.at, found.message, at_key=True)
        return Replay(missing=found.message)
    text, name, at = found
    build_args = {
        a.buildArg: arg_values[n] for n, a in spec.args.items() if a.buildArg and n in arg_values
    }
    arch = _ARCHES.get(platform.machine().lower(), "amd64")
    try:
        recipe = dockerfile.parse(text, name, build_args, ("linux", arch))
    except dockerfile.DockerfileError as exc:
        ctx.error(at, str(exc), code=RECIPE)
        return Replay()
    for line, message in recipe.warnings:
        ctx.warn(at, f"{name}:{line}: {message}" if line else f"{name}: {message}", at_key=True)
    return _replay(recipe, ctx, source, at, kit)


@dataclass(frozen=True)
class _Missing:
    at: Path
    message: str


def _find_recipe(
    spec: v3.KitV3, ctx: Context, source: KitSource
) -> tuple[str, str, Path] | _Missing | None:
    """(text, the name messages use, where the kit names it); _Missing when the kit
    names a Dockerfile that is not there; None when there is none (or no folder to read
    it from: an editor's buffer)."""
    if spec.build is not None:
        return spec.build, f"{posixpath.basename(source.spec_file)} (build:)", ("build",)
    if source.reader is None:
        return None
    if spec.dockerfile is not None:
        names = [posixpath.normpath(spec.dockerfile)]
        at: Path = ("dockerfile",)
    else:
        named = source.spec_file  # a zip's is "kit.zip!spec.yaml", its folder "kit.zip!"
        inside = named[len(source.folder) :] if named.startswith(source.folder) else named
        stem = posixpath.basename(inside.replace("\\", "/")).rsplit(".", 1)[0]
        names = [f"{stem}{COMPANION}"]
        if stem == "spec":  # a kit folder: Docker's files are named after it
            names.insert(0, f"{source.default_name}{COMPANION}")
        at = ORIGIN_KEY
    for rel in names:
        try:
            data = source.read(rel)
        except KeyError:
            continue
        if len(data) > dockerfile.MAX_BYTES:
            ctx.error(at, f"{rel}: larger than {dockerfile.MAX_BYTES >> 10} KiB", code=RECIPE)
            return None
        shown = posixpath.join(source.folder, rel) if source.folder else rel
        try:
            return data.decode("utf-8-sig"), shown, at
        except UnicodeDecodeError as exc:
            ctx.error(at, f"{rel}: not UTF-8 text (byte {exc.start})", code=RECIPE)
            return None
    if spec.dockerfile is None:
        # No companion: a declaration-only workload (SPEC-v3 §3.1), whose agent is the
        # template's shell, as a workload without a recipe always was in sandkit.
        return None
    return _Missing(
        at,
        f"the agent's command comes from its Dockerfile's ENTRYPOINT; '{spec.dockerfile}' is not in "
        f"the kit folder {source.folder}, so this kit loads but its agent cannot run: add "
        "the Dockerfile beside the spec",
    )


def _replay(
    recipe: dockerfile.Recipe, ctx: Context, source: KitSource, at: Path, kit: str
) -> Replay:
    out = Replay(image=recipe.base, user=recipe.user, workdir=recipe.workdir)
    agent = images.template_agent(recipe.base)
    if agent is None:
        ctx.error(
            at,
            f"{recipe.file}:{recipe.base_line}: FROM {recipe.base}: sandkit replays the "
            "recipe on its own Debian guest, which stands in for Docker's sandbox templates "
            "only; start FROM docker/sandbox-templates:shell (or another template, e.g. "
            "docker/sandbox-templates:claude-code)",
            code=RECIPE,
        )
        return out
    base_entry, base_args = _template_kit(agent, ctx, at, out)
    out.entrypoint, out.args = recipe.launch(base_entry, base_args)

    def origin(line: int) -> m.Origin:
        return m.Origin(kit=kit, file=recipe.file, line=line, column=1)

    copies = sum(isinstance(step, dockerfile.Copy) for step in recipe.steps)
    ignore = _dockerignore(source, ctx, at) if copies else dockerignore.DockerIgnore()
    budget = _CopyBudget(MAX_RECIPE_COPY_BYTES)
    if copies > MAX_RECIPE_SOURCES:
        ctx.error(
            at,
            f"{recipe.file}: its COPY instructions name {copies} sources, more than "
            f"{MAX_RECIPE_SOURCES}; copy folders instead of their files one by one",
            code=RECIPE,
        )
        budget.spent = True
    for step in recipe.steps:
        if isinstance(step, dockerfile.Workdir):
            argv: tuple[str, ...] = ("sh", "-c", _WORKDIR_SCRIPT, "sh", step.path, step.user)
            user = "0"
        elif isinstance(step, dockerfile.Run):
            env = tuple(f"{k}={v}" for k, v in step.env if k.upper() not in PROXY_VARS)
            where = ("-C", step.workdir) if step.workdir else ()
            body = step.argv if step.argv is not None else (*step.shell, step.script or "")
            argv, user = ("env", *where, *env, *body), _ROOT_NAMES.get(step.user, step.user)
        else:
            argv = _copy_argv(step, recipe.file, ctx, source, at, ignore, budget)
            user = "0"
        out.install.append(
            m.Command(
                argv=argv,
                user=user,
                description=f"{recipe.file}:{step.line}",
                origin=origin(step.line),
            )
        )
    for name in recipe.env:
        check_env_name(ctx, name, at)
    out.env = {k: v for k, v in recipe.env.items() if k.upper() not in PROXY_VARS}
    if recipe.user is not None and recipe.user not in ("agent", str(AGENT_UID)):
        ctx.warn(
            at,
            f"{recipe.file}: the last USER is '{recipe.user}', but sandkit runs the agent as "
            f"'agent' (uid {AGENT_UID}), as sbx's templates do; the USER applies to the RUN "
            "steps",
            at_key=True,
        )
    return out


def _template_kit(
    agent: str, ctx: Context, at: Path, out: Replay
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The template's agent, installed as sandkit's built-in kit of it installs it: its
    install steps first, its command as the image's default ENTRYPOINT and CMD."""
    name = images.TEMPLATE_KITS.get(agent)
    if name is None:
        if agent != "shell":
            ctx.warn(
                at,
                f"sandkit has no built-in kit for the '{agent}' template's agent: the "
                "Dockerfile's RUN steps must install it, and its ENTRYPOINT start it",
                at_key=True,
            )
        return (), ()
    from sandkit.kits.builtin import builtin_dir
    from sandkit.kits.issues import KitError
    from sandkit.kits.loader import load_kit  # the loader imports this module

    try:
        base = load_kit(builtin_dir() / name).kit
    except KitError as exc:
        ctx.warn(at, f"the built-in kit '{name}' (the template's agent) did not load: {exc}")
        return (), ()
    out.install.extend(base.install)
    if base.agent is None:
        return (), ()
    return base.agent.entrypoint, base.agent.args


def _dockerignore(source: KitSource, ctx: Context, at: Path) -> dockerignore.DockerIgnore:
    """The kit folder's .dockerignore, as Docker reads a build context's."""
    if not source.files_at(dockerignore.FILE, 0):
        return dockerignore.DockerIgnore()
    shown = posixpath.join(source.folder, dockerignore.FILE) if source.folder else dockerignore.FILE
    try:
        data = source.read(dockerignore.FILE)
        if len(data) > dockerfile.MAX_BYTES:
            raise dockerignore.DockerIgnoreError(0, f"larger than {dockerfile.MAX_BYTES >> 10} KiB")
        return dockerignore.parse(data.decode("utf-8-sig"))
    except (KeyError, UnicodeDecodeError) as exc:
        ctx.error(at, f"{shown}: cannot be read as text ({exc})", code=RECIPE)
    except dockerignore.DockerIgnoreError as exc:
        where = f"{shown}:{exc.line}" if exc.line else shown
        ctx.error(at, f"{where}: {exc}", code=RECIPE)
    return dockerignore.DockerIgnore()


@dataclass
class _CopyBudget:
    """What a recipe's COPYs may still read; once over, no more is read or reported."""

    bytes_left: int
    files_left: int = MAX_KIT_FILES  # listed, over all COPYs
    spent: bool = False
    listings: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)


def _copy_argv(
    step: dockerfile.Copy,
    file: str,
    ctx: Context,
    source: KitSource,
    at: Path,
    ignore: dockerignore.DockerIgnore,
    budget: _CopyBudget,
) -> tuple[str, ...]:
    """One install step writing the files a COPY names, read through the kit's checked
    reader, as Docker would place them: a file at ``dest`` (or in it), a folder's
    contents below ``dest``, each wildcard match likewise."""
    shown = step.source or "."

    def refuse(message: str) -> tuple[str, ...]:
        ctx.error(at, f"{file}:{step.line}: COPY {shown}: {message}", code=RECIPE)
        return ("true",)

    if budget.spent:
        return ("true",)
    placed = _copy_targets(step, source, ignore, budget)
    if isinstance(placed, str):
        return refuse(placed)
    total = 0
    for rel, _target, (_mode, size), _name in placed:  # sizes first: nothing read in vain
        if size > MAX_COPY_FILE_BYTES:
            return refuse(
                f"{rel} is larger than {MAX_COPY_FILE_BYTES >> 10} KiB; download a large "
                "file in a RUN step instead"
            )
        total += size
    if total > MAX_COPY_BYTES:
        return refuse(
            f"its files come to more than {MAX_COPY_BYTES >> 10} KiB; download large "
            "files in a RUN step instead"
        )
    if total > budget.bytes_left:
        budget.spent = True
        return refuse(
            f"the recipe's COPYs come to more than {MAX_RECIPE_COPY_BYTES >> 20} MiB; "
            "download large files in a RUN step instead"
        )
    budget.bytes_left -= total
    words: list[str] = []
    for rel, target, (mode, _size), name in placed:
        try:
            data = source.read(rel)
        except KeyError:
            return refuse(f"{rel} cannot be read from the kit folder {source.folder}")
        if len(data) > MAX_COPY_FILE_BYTES:  # it grew since it was listed
            return refuse(f"{rel} is larger than {MAX_COPY_FILE_BYTES >> 10} KiB")
        chmod = step.chmod if step.chmod is not None else mode & 0o777  # never set-id
        words += [target, f"{chmod:o}", base64.b64encode(data).decode(), name]
    return ("sh", "-c", _COPY_SCRIPT, "sh", step.chown or "0:0", *words)


_GLOB = re.compile(r"[*?\[]")


def _copy_targets(
    step: dockerfile.Copy,
    source: KitSource,
    ignore: dockerignore.DockerIgnore,
    budget: _CopyBudget,
) -> list[tuple[str, str, tuple[int, int], str]] | str:
    """(kit file, where it goes, (mode, size), the name it takes inside ``dest`` should
    that be a folder already: "" when ``dest`` is a folder anyway) for each file of the
    COPY, or why none."""
    pattern = step.source.split("/") if step.source else []
    fixed = list(itertools.takewhile(lambda part: not _GLOB.search(part), pattern))
    prefix = "/".join(fixed)
    if prefix not in budget.listings:
        budget.listings[prefix] = source.files_at(prefix, budget.files_left)
        budget.files_left -= len(budget.listings[prefix])
        if budget.files_left < 0:
            budget.spent = True
            return (
                f"the recipe's COPYs list more than {MAX_KIT_FILES} files of the kit folder; "
                "copy less of it"
            )
    listed = budget.listings[prefix]
    listed = {rel: mode for rel, mode in listed.items() if not ignore(rel)}
    if len(fixed) == len(pattern):  # no wildcard: a file, or a folder's contents
        matches = {step.source: list(listed.items())}
    else:
        matches = {}
        for rel, mode in listed.items():
            parts = rel.split("/")
            if len(parts) >= len(pattern) and all(
                fnmatch.fnmatchcase(part, glob.replace("[^", "[!"))
                for part, glob in zip(parts, pattern, strict=False)
            ):
                matches.setdefault("/".join(parts[: len(pattern)]), []).append((rel, mode))
    if not matches or not any(matches.values()):
        left_out = " (or its .dockerignore leaves it out)" if ignore.patterns else ""
        return (
            f"no such file in the kit folder {source.folder}{left_out}; add it there or fix "
            "the path"
        )
    if len(matches) > 1 and not step.into:
        return (
            f"it names {len(matches)} files or folders, so the destination must be a "
            f"folder ending in '/': {step.dest}/"
        )
    out = []
    for match, found in matches.items():
        for rel, mode in found:
            name = posixpath.basename(rel)
            if rel == match and step.into:  # a file the source named, into a folder
                out.append((rel, posixpath.join(step.dest, name), mode, ""))
            elif rel == match:  # to dest itself, or into it if the guest has it as a folder
                out.append((rel, step.dest, mode, name))
            else:  # inside a folder it named: the folder's contents go below dest
                below = rel[len(match) + 1 :] if match else rel
                out.append((rel, posixpath.join(step.dest, below), mode, ""))
    if len(out) > MAX_COPY_FILES:
        return f"more than {MAX_COPY_FILES} files; copy fewer, or fetch them in a RUN step"
    return out
