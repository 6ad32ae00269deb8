"""What `request.build` learns from resolving built-in kits, remembered on disk
($XDG_CACHE_HOME/sandkit/resolved/): the shape, the image reference, the warnings and the
credentials' names. Importing the kit engine costs ~0.1 s of every `sandkit run`; with a
memo a warm start resolves nothing in the CLI (the supervisor resolves the kits again
before it adopts or boots, and refuses what it cannot run).

Only references that are all built-in kit names are remembered: their files are one
folder, whose every file's identity (path, mtime, size) is in the key, with the kit
engine's own sources, the flags, the args and the host's size. Anything else, or a memo
that cannot be read, is a full resolution."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from sandkit.fsio import write_atomic
from sandkit.paths import cache_dir


def _debug(message: str, *args: object) -> None:
    """Logged only when it happens: `logging` stays out of the warm start's path."""
    from sandkit.logs import logger

    logger(__name__).debug(message, *args)


FORMAT = 1


@dataclass(frozen=True)
class Required:
    """A credential a kit marks required, as far as the memo may decide that it has a value
    (its own lookup, net/secrets.py, decides otherwise)."""

    service: str
    oauth: bool
    env: tuple[str, ...]  # host variables it reads (built-in kits: read without a grant)
    file: bool  # it also has a file source: only the full lookup can tell


@dataclass(frozen=True)
class Summary:
    cpus: int
    memory_mib: int
    notes: tuple[str, ...]  # the shape's notes (a kit's request the host cannot meet)
    warnings: tuple[str, ...]  # the kits' warnings, formatted: said at every start
    image: str | None  # the agent kit's image reference (images.require checks it again)
    agent_name: str
    required: tuple[Required, ...]
    env_names: tuple[str, ...]  # host variables any credential names (pool hand-over)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Summary:
        required = tuple(
            Required(str(r["service"]), bool(r["oauth"]), tuple(r["env"]), bool(r["file"]))
            for r in data["required"]  # type: ignore[attr-defined]
        )
        return cls(
            cpus=int(data["cpus"]),  # type: ignore[call-overload]
            memory_mib=int(data["memory_mib"]),  # type: ignore[call-overload]
            notes=tuple(data["notes"]),  # type: ignore[arg-type]
            warnings=tuple(data["warnings"]),  # type: ignore[arg-type]
            image=None if data["image"] is None else str(data["image"]),
            agent_name=str(data["agent_name"]),
            required=required,
            env_names=tuple(data["env_names"]),  # type: ignore[arg-type]
        )


def _tree(root: Path, suffix: str = "") -> list[tuple[str, int, int]]:
    found = []
    for folder, _, files in _walk(root):
        for name in files:
            if name.endswith(suffix):
                path = folder / name
                with contextlib.suppress(OSError):
                    st = path.stat()
                    found.append((str(path), st.st_mtime_ns, st.st_size))
    return sorted(found)


def _walk(root: Path) -> list[tuple[Path, list[str], list[str]]]:
    return [(Path(d), dirs, files) for d, dirs, files in os.walk(root)]


def key(refs: list[str], kit_args: Mapping[str, str], **inputs: object) -> str | None:
    """The memo's key, or None when a reference is not a built-in kit's name."""
    from sandkit.kits.builtin import builtin_dir, looks_like_path

    if any(ref.startswith("git+") or looks_like_path(ref) or Path(ref).exists() for ref in refs):
        return None
    kits_root = builtin_dir()
    if not all((kits_root / ref / "spec.yaml").is_file() for ref in refs):
        return None
    engine = Path(__file__).resolve().parent.parent / "kits"
    data = {
        "format": FORMAT,
        "refs": refs,
        "args": sorted(kit_args.items()),
        "inputs": sorted((k, repr(v)) for k, v in inputs.items()),
        "kits": _tree(kits_root),
        "engine": _tree(engine, ".py"),
    }
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:32]


def _path(memo_key: str) -> Path:
    return cache_dir() / "resolved" / f"{memo_key}.json"


def load(memo_key: str | None) -> Summary | None:
    if memo_key is None:
        return None
    try:
        return Summary.from_json(json.loads(_path(memo_key).read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        _debug("kit memo %s unreadable (%s): resolving", memo_key, exc)
        return None


def save(memo_key: str | None, summary: Summary) -> None:
    if memo_key is None:
        return
    path = _path(memo_key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(asdict(summary)).encode())
    except OSError as exc:  # a cache: a full resolution next time
        _debug("kit memo not saved: %s", exc)
