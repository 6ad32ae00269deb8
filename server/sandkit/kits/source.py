"""Where kits come from: a directory holding spec.yaml (plus files/home/**, files/workspace/**),
that spec.yaml itself, or a .zip of such a directory.

A kit may only ship regular files inside itself: no symlinks, no absolute or '..' paths,
bounded sizes, so that nothing a kit names can reach outside it (security invariant 5)."""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sandkit.kits.issues import KitError, Span

SPEC_NAME = "spec.yaml"
MAX_SPEC_BYTES = 1 << 20
MAX_KIT_BYTES = 256 << 20
MAX_KIT_FILES = 10_000
TARGETS = ("home", "workspace")


@dataclass(frozen=True)
class KitSource:
    """A kit's spec text and the files shipped with it, read but not yet validated."""

    location: str  # as the user named it
    spec_file: str  # the name issues are reported against
    text: str
    default_name: str  # v3 kits have no name: the folder (or zip) stem stands in
    files: dict[str, int] = field(default_factory=dict)  # relative path → mode
    reader: Callable[[str], bytes] | None = None
    folder: str = ""  # where companion files are looked for, as messages name it
    lister: Callable[[str, int], dict[str, tuple[int, int]]] | None = None

    def files_at(self, relpath: str, limit: int) -> dict[str, tuple[int, int]]:
        """The regular files at or below ``relpath`` ("" for the whole kit; path → (mode,
        size)), at most ``limit`` + 1 of them (more says "too many"). Links are neither
        listed nor entered; empty when the path is not in the kit or leaves it."""
        if self.lister is None or (relpath and unsafe_path(relpath) is not None):
            return {}
        return self.lister(relpath, limit)

    def read(self, relpath: str) -> bytes:
        """Read a regular file inside the kit; KeyError if there is none at ``relpath``
        or the path would leave the kit (absolute, '..', through a symlink)."""
        if self.reader is None or unsafe_path(relpath) is not None:
            raise KeyError(relpath)
        return self.reader(relpath)

    def static_files(self) -> list[tuple[str, str, int]]:
        """(target, path under it, mode) for files/home/** and files/workspace/**. Every
        name was checked by ``unsafe_path`` when the kit was read."""
        out = []
        for rel, mode in sorted(self.files.items()):
            parts = rel.split("/")
            if len(parts) > 2 and parts[0] == "files" and parts[1] in TARGETS:
                out.append((parts[1], "/".join(parts[2:]), mode))
        return out


_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_path(name: str) -> str | None:
    """Why ``name`` is not a plain path inside a kit (None: it is). The one check for zip
    entries, folder files, validation and placement: a name that passes it can only name
    a file below the kit's own folder, and below the target it is placed in."""
    if not name:
        return "an empty path"
    if "\0" in name:
        return "a NUL byte in the path"
    if "\\" in name:
        return "a backslash in the path (use '/')"
    if name.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(name):
        return "a drive letter in the path"
    for part in name.split("/"):
        if part == "":
            return "an empty path component ('//' or a trailing '/')"
        if part in (".", ".."):
            return f"a '{part}' path component"
    return None


def _fail(file: str, message: str) -> KitError:
    return KitError.at(file, Span.point(), message, code="source")


def open_source(location: str | Path) -> KitSource:
    """Open a kit by path. Raises KitError naming the path and what to do."""
    path = Path(location)
    shown = str(location)
    if path.is_dir():
        return _from_dir(path, shown)
    if path.suffix == ".zip" and path.is_file():
        return _from_zip(path, shown)
    if path.is_file():
        return _from_dir(path.parent, shown, spec=path)
    raise _fail(
        shown, "no such kit: give a kit directory (with spec.yaml), its spec.yaml, or a .zip"
    )


def _decode(data: bytes, file: str) -> str:
    if len(data) > MAX_SPEC_BYTES:
        raise _fail(file, f"spec is larger than {MAX_SPEC_BYTES >> 10} KiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(file, f"spec is not UTF-8 text (byte {exc.start})") from None


def _stem(name: str) -> str:
    return name.removesuffix(".zip") or "kit"


def _from_dir(root: Path, shown: str, spec: Path | None = None) -> KitSource:
    spec = spec or root / SPEC_NAME
    spec_file = str(spec)
    if not spec.is_file():
        raise _fail(
            str(root), f"no {SPEC_NAME} in this directory: a kit directory holds {SPEC_NAME}"
        )
    try:
        text = _decode(spec.read_bytes(), spec_file)
    except OSError as exc:
        raise _fail(spec_file, f"cannot read: {exc.strerror}") from None
    files: dict[str, int] = {}
    files_dir = root / "files"
    if spec.name == SPEC_NAME and files_dir.is_symlink():
        raise _fail(
            str(files_dir), "kits may not ship symlinks: make 'files' a real folder in the kit"
        )
    if spec.name == SPEC_NAME and files_dir.is_dir():
        total = 0
        for base, dirs, names in os.walk(files_dir):  # links are listed, never entered
            for name in sorted([*dirs, *names]):
                item = Path(base) / name
                rel = item.relative_to(root).as_posix()
                why = unsafe_path(rel)
                if why is not None:
                    raise _fail(str(item), f"{why}: rename the file in the kit")
                info = item.lstat()
                if stat.S_ISLNK(info.st_mode):
                    raise _fail(
                        str(item), "kits may not ship symlinks: copy the file into the kit instead"
                    )
                if stat.S_ISREG(info.st_mode):
                    files[rel] = stat.S_IMODE(info.st_mode)
                    total += info.st_size
                _check_bounds(len(files), total, str(item))

    def read(rel: str) -> bytes:
        base = root.resolve()
        target = (root / rel).resolve()
        if not target.is_relative_to(base) or target != base.joinpath(*rel.split("/")):
            raise KeyError(rel)  # it leaves the kit or passes through a symlink
        if not target.is_file():
            raise KeyError(rel)
        try:
            return target.read_bytes()
        except OSError:
            raise KeyError(rel) from None  # unreadable (or gone): as good as not there

    def lister(rel: str, limit: int) -> dict[str, tuple[int, int]]:
        base = root.resolve()
        top = base.joinpath(*rel.split("/")) if rel else base
        if (root / rel).resolve() != top:
            return {}  # through a link
        try:
            info = top.lstat()
        except OSError:
            return {}
        if stat.S_ISREG(info.st_mode):
            return {rel: (stat.S_IMODE(info.st_mode), info.st_size)}
        out: dict[str, tuple[int, int]] = {}
        for base_dir, dirs, names in os.walk(top):  # links are listed, never entered
            dirs.sort()
            for name in sorted(names):
                item = Path(base_dir) / name
                path = item.relative_to(base).as_posix()
                try:
                    info = item.lstat()
                except OSError:
                    continue  # gone since it was listed
                if stat.S_ISREG(info.st_mode) and unsafe_path(path) is None:
                    out[path] = (stat.S_IMODE(info.st_mode), info.st_size)
                    if len(out) > limit:
                        return out
        return out

    name = root.resolve().name if spec.name == SPEC_NAME else spec.stem
    return KitSource(shown, spec_file, text, name, files, read, str(spec.parent), lister)


def _check_bounds(count: int, total: int, where: str) -> None:
    if count > MAX_KIT_FILES:
        raise _fail(where, f"kit ships more than {MAX_KIT_FILES} files")
    if total > MAX_KIT_BYTES:
        raise _fail(where, f"kit ships more than {MAX_KIT_BYTES >> 20} MiB of files")


def _from_zip(path: Path, shown: str) -> KitSource:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _fail(shown, f"not a readable zip file: {exc}") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        prefix = _zip_prefix([i.filename for i in infos], shown)
        contents: dict[str, bytes] = {}
        modes: dict[str, int] = {}
        total = 0
        for info in infos:
            name = info.filename
            why = unsafe_path(name)
            if why is not None:
                raise _fail(
                    f"{shown}!{name!r}",
                    f"unsafe entry name in the zip ({why}): rebuild the zip from a plain folder",
                )
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _fail(
                    f"{shown}!{name}", "kits may not ship symlinks: rebuild the zip without them"
                )
            rel = name[len(prefix) :] if name.startswith(prefix) else name
            total += info.file_size
            _check_bounds(len(contents), total, f"{shown}!{name}")
            try:
                contents[rel] = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as exc:
                raise _fail(f"{shown}!{name}", f"cannot read from zip: {exc}") from None
            modes[rel] = stat.S_IMODE(mode) or 0o644
    spec_file = f"{shown}!{prefix}{SPEC_NAME}"
    text = _decode(contents[SPEC_NAME], spec_file)
    every = {k: (mode, len(contents[k])) for k, mode in sorted(modes.items())}
    modes.pop(SPEC_NAME, None)

    def lister(rel: str, limit: int) -> dict[str, tuple[int, int]]:
        below = f"{rel}/"
        found = {k: v for k, v in every.items() if not rel or k == rel or k.startswith(below)}
        return dict(list(found.items())[: limit + 1])

    return KitSource(
        shown,
        spec_file,
        text,
        _stem(path.name),
        modes,
        contents.__getitem__,
        f"{shown}!{prefix}",
        lister,
    )


def _zip_prefix(names: list[str], shown: str) -> str:
    """spec.yaml at the root of the zip, or inside its one top-level folder."""
    if SPEC_NAME in names:
        return ""
    nested = {
        n.split("/", 1)[0] for n in names if n.count("/") == 1 and n.endswith("/" + SPEC_NAME)
    }
    if len(nested) == 1:
        return nested.pop() + "/"
    raise _fail(shown, f"no {SPEC_NAME} at the top of the zip (or in its one top-level folder)")
