"""From what the user typed (agent name or path, --kit paths, --kit-arg values) to a
ResolvedSandbox: loads each kit, follows ``extends`` to built-in kits, composes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from sandkit.kits.builtin import looks_like_path, resolve_ref
from sandkit.kits.composition import MAX_EXTENDS_DEPTH, apply_extends, compose, unreachable_injects
from sandkit.kits.convert_common import INJECT_NOT_ALLOWED
from sandkit.kits.gitref import fetched_tree, is_git_ref
from sandkit.kits.issues import KitError, KitIssue, Span
from sandkit.kits.loader import LoadedKit, load_kit
from sandkit.kits.model import Kit, ResolvedSandbox


@dataclass(frozen=True)
class Resolution:
    sandbox: ResolvedSandbox
    loaded: tuple[LoadedKit, ...]

    @property
    def warnings(self) -> tuple[KitIssue, ...]:
        # The composed check sees every kit's allow rules, so it replaces the per-kit one.
        own = (w for k in self.loaded for w in k.warnings if w.code != INJECT_NOT_ALLOWED)
        return (*own, *unreachable_injects(self.sandbox))


def load_ref(
    ref: str,
    args: Mapping[str, str] | None = None,
    *,
    require_args: bool = False,
    env: Mapping[str, str] | None = None,
) -> LoadedKit:
    """Load a kit by built-in name or path, with ``extends`` folded in. ``env``: runtime
    values for v3's ``${{ kit.env.NAME }}`` (e.g. WORKSPACE_DIR)."""
    loaded = load_kit(resolve_ref(ref), args, require_args=require_args, env=env)
    return LoadedKit(
        with_parents(loaded.kit, args, require_args),
        loaded.source,
        loaded.warnings,
        loaded.arg_values,
    )


def with_parents(
    kit: Kit, args: Mapping[str, str] | None = None, require_args: bool = False
) -> Kit:
    chain: list[Kit] = []
    # name → the file that declares it, and the files already in the chain: a parent that
    # reuses a name, or a file met again (a cycle), is refused naming both files.
    names = {kit.name: kit.file}
    files = {_real(kit.file): kit.file}
    current = kit
    while current.extends is not None:
        if len(chain) >= MAX_EXTENDS_DEPTH:
            break
        try:
            parent = resolve_ref(extends_ref(current, current.extends))
        except KitError:
            if current.extends in names:  # no built-in of that name: it names itself
                _extends_clash(current, names[current.extends], "a cycle: it names the kit in")
            raise
        loaded = load_kit(parent, args, require_args=require_args).kit
        again = files.get(_real(loaded.file))
        if again is not None:
            _extends_clash(current, again, "a cycle: it leads back to")
        if loaded.name in names:
            _extends_clash(
                current,
                loaded.file,
                f"a clash: '{loaded.name}' is declared both by {names[loaded.name]} and by",
            )
        names[loaded.name] = loaded.file
        files[_real(loaded.file)] = loaded.file
        current = loaded
        chain.append(current)
    return apply_extends(kit, chain)


def _real(file: str) -> str:
    return str(Path(file).resolve())


def _extends_clash(child: Kit, other: str, what: str) -> NoReturn:
    raise KitError.at(
        child.file,
        Span.point(child.origin.line - 1),
        f"'extends: {child.extends}' in {child.file} forms {what} {other}; a kit chain names "
        "each kit once: give the extending kit its own name",
        code="compose",
    )


def extends_ref(kit: Kit, ref: str) -> str:
    """What ``extends: REF`` names: a built-in kit, a git reference, or a path relative to
    the extending kit's folder; a kit fetched from git may only name folders inside its
    own repository (a download must not reach into this machine's files)."""
    if is_git_ref(ref) or not looks_like_path(ref):
        return ref
    folder = Path(kit.file).parent
    target = (folder / ref).resolve()
    tree = fetched_tree(folder)
    if tree is not None and (Path(ref).is_absolute() or not target.is_relative_to(tree)):
        raise KitError.at(
            kit.file,
            Span.point(kit.origin.line - 1),
            f"'extends: {ref}' leaves the repository this kit was fetched from: extend a "
            "built-in kit, a git+https:// reference, or a folder inside the repository",
            code="compose",
        )
    return str(target)


def resolve(
    agent: str,
    mixins: Sequence[str] = (),
    args: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Resolution:
    """Load and compose; every arg given must be declared by some kit.

    ``defaults`` fill args that kits declare and the user did not give (the host's
    package registries, for instance); unlike ``args`` they may go unused."""
    values = {**(defaults or {}), **(args or {})}
    loaded = [load_ref(agent, values, require_args=True, env=env)]
    loaded += [load_ref(ref, values, require_args=True, env=env) for ref in mixins]
    declared = {name for k in loaded for name in k.kit.args}
    unknown = sorted(set(args or {}) - declared)
    if unknown:
        raise KitError.at(
            "--kit-arg",
            Span.point(),
            f"no kit declares arg(s) {', '.join(unknown)}",
            code="compose",
        )
    _named_once([agent, *mixins], loaded)
    sandbox = compose(loaded[0].kit, [k.kit for k in loaded[1:]])
    return Resolution(sandbox, tuple(loaded))


def _named_once(refs: Sequence[str], loaded: Sequence[LoadedKit]) -> None:
    """Two different references (a path and a git URL, say) to kits of one name would
    make "which kit is this" depend on flag order: refused."""
    seen: dict[str, tuple[str, str]] = {}
    for ref, kit in zip(refs, loaded, strict=True):
        where = str(Path(kit.source.spec_file).resolve()) if kit.source.reader else ref
        first = seen.setdefault(kit.kit.name, (ref, where))
        if first[1] != where:
            raise KitError.at(
                ref,
                Span.point(),
                f"kit '{kit.kit.name}' is named twice, by '{first[0]}' and by '{ref}': "
                "keep one of them",
                code="compose",
            )
