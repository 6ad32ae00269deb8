"""Kits from git: ``git+https://HOST/REPO[#REF][:SUBDIR]`` (and ``git+file:///PATH…`` for
a repository on this machine), fetched on the host with the user's own ``git`` (its
proxy and credential settings), one commit deep, into
``$XDG_CACHE_HOME/sandkit/kits/git/<url digest>-<commit>/``; a commit fetched once is not
fetched again.

The fetched tree is untrusted: everything in the reference is checked before git runs
(a REF or URL that could be read as an option, a SUBDIR leaving the repository), only the
reference's own transport is allowed, links are never checked out as links, a kit folder
that is a link (or holds one) is refused, and its size is bounded like any kit's."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from sandkit.kits.issues import KitError, Span
from sandkit.kits.source import MAX_KIT_BYTES, MAX_KIT_FILES, SPEC_NAME, unsafe_path
from sandkit.paths import cache_dir

PREFIX = "git+"
SCHEMES = ("https", "file")
FORM = "git+https://HOST/REPO[#REF][:SUBDIR] (or git+file:///PATH[#REF][:SUBDIR])"
GIT_TIMEOUT = 300.0
MAX_REF_LENGTH = 2048
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_LINK, _SUBMODULE = "120000", "160000"


@dataclass(frozen=True)
class GitRef:
    text: str  # as the user wrote it
    url: str  # what git fetches
    ref: str | None
    subdir: str | None


@dataclass(frozen=True)
class Fetched:
    reference: str
    url: str
    ref: str | None
    subdir: str | None
    commit: str
    path: str  # the kit folder in the cache


_fetched: dict[str, Fetched] = {}  # this process's fetches, for `kit inspect`


def is_git_ref(ref: str) -> bool:
    return ref.startswith(PREFIX)


def _fail(ref: str, message: str) -> KitError:
    return KitError.at(ref, Span.point(), message, code="source")


def parse(text: str) -> GitRef:
    """Check a reference without running anything. Raises KitError saying what to write."""
    if len(text) > MAX_REF_LENGTH:
        raise _fail(text[:80] + "…", f"a git kit reference is at most {MAX_REF_LENGTH} characters")
    if any(ord(ch) < 0x21 or ch == "\x7f" for ch in text):
        raise _fail(text, f"spaces or control characters in a git kit reference; write {FORM}")
    scheme, sep, rest = text.removeprefix(PREFIX).partition("://")
    if not is_git_ref(text) or not sep or scheme not in SCHEMES:
        raise _fail(text, f"not a git kit reference sandkit fetches; write {FORM}")
    authority, _, path = rest.partition("/")
    if scheme == "https" and (not authority or authority.startswith("-")):
        raise _fail(text, f"no host in the reference; write {FORM}")
    if scheme == "file" and authority:
        raise _fail(text, "a git+file reference names a local path: git+file:///PATH (three /)")
    if ":" in authority.rpartition("@")[0]:
        raise _fail(text, "a password in the URL: let git's credential helper supply it")
    path, colon, subdir = path.partition(":")
    path, hash_, ref = path.partition("#")
    if not path or path.startswith("-") or "#" in ref:
        raise _fail(text, f"no repository path in the reference; write {FORM}")
    if hash_ and not _valid_ref(ref):
        raise _fail(
            text,
            f"'{ref}' is not a branch, tag or commit name (letters, digits, '.', '_', '-', "
            "'/'; not starting with '-' or '.', no '..'); write #main, #v1.2 or a commit",
        )
    if colon:
        why = unsafe_path(subdir.rstrip("/") if subdir != "/" else subdir)
        if why is not None:
            raise _fail(text, f"SUBDIR '{subdir}' is not a folder inside the repository ({why})")
    return GitRef(
        text,
        f"{scheme}://{authority}/{path}",
        ref if hash_ else None,
        subdir.rstrip("/") if colon else None,
    )


def _valid_ref(ref: str) -> bool:
    return (
        bool(_REF.fullmatch(ref))
        and ".." not in ref
        and "//" not in ref
        and not ref.endswith(("/", ".lock", "."))
        and "/." not in ref
    )


def _git(args: list[str], ref: GitRef, cwd: Path | None = None) -> str:
    scheme = ref.url.partition(":")[0]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": scheme}
    argv = ["git", "-c", "protocol.allow=never", "-c", f"protocol.{scheme}.allow=always"]
    argv += ["-c", "core.symlinks=false", *args]  # links arrive as files, never followed
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise _fail(
            ref.text, "git is not installed: install git to use git kit references"
        ) from None
    except subprocess.TimeoutExpired:
        raise _fail(
            ref.text, f"git did not finish within {GIT_TIMEOUT:.0f} s: check the network"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise _fail(ref.text, f"git {args[0]} failed: {last}")
    return done.stdout


def _commit(ref: GitRef) -> str:
    if ref.ref is not None and _COMMIT.fullmatch(ref.ref):
        return ref.ref
    name = ref.ref or "HEAD"
    out = _git(["ls-remote", "--", ref.url, name], ref)
    found: dict[str, str] = {}
    for line in out.splitlines():
        sha, tab, name_found = line.partition("\t")
        if tab:
            found[name_found] = sha
    for candidate in (
        name,
        f"refs/heads/{name}",
        f"refs/tags/{name}^{{}}",  # an annotated tag's commit
        f"refs/tags/{name}",
    ):
        if candidate in found:
            return found[candidate]
    raise _fail(ref.text, f"no branch or tag '{name}' in {ref.url}: check the name after '#'")


def _cache_root() -> Path:
    return cache_dir() / "kits" / "git"


def fetch(text: str) -> Path:
    """The kit folder for a git reference: from the cache when its commit was fetched
    before, else fetched. Raises KitError naming the reference and what to do."""
    ref = parse(text)
    commit = _commit(ref)
    digest = hashlib.sha256(ref.url.encode()).hexdigest()[:16]
    final = _cache_root() / f"{digest}-{commit}"
    if not (final / "source.json").is_file():
        commit = _download(ref, digest)  # the branch may have moved since ls-remote
        final = _cache_root() / f"{digest}-{commit}"
    folder = final / "tree" / ref.subdir if ref.subdir else final / "tree"
    if not (folder / SPEC_NAME).is_file() or folder.is_symlink():
        where = f"'{ref.subdir}'" if ref.subdir else "the repository's top folder"
        raise _fail(
            text,
            f"no {SPEC_NAME} in {where} of {ref.url} at {commit[:12]}: "
            "name the kit's folder after ':'",
        )
    _fetched[text] = Fetched(text, ref.url, ref.ref, ref.subdir, commit, str(folder))
    return folder


def _download(ref: GitRef, digest: str) -> str:
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
    try:
        tree = work / "tree"
        _git(["init", "-q", str(tree)], ref)
        # A named branch or tag is fetched by name (any server allows that), a commit by id.
        wanted = ref.ref if ref.ref is not None else "HEAD"
        _git(["fetch", "-q", "--depth", "1", "--no-tags", "--", ref.url, wanted], ref, tree)
        got = _git(["rev-parse", "FETCH_HEAD"], ref, tree).strip()
        _check_tree(ref, tree, got)
        _git(["checkout", "-q", "--detach", "FETCH_HEAD"], ref, tree)
        shutil.rmtree(tree / ".git")
        info = {"reference": ref.text, "url": ref.url, "ref": ref.ref, "commit": got}
        (work / "source.json").write_text(json.dumps(info))
        final = root / f"{digest}-{got}"
        try:
            work.rename(final)
        except OSError:  # another fetch of the same commit finished first
            if not (final / "source.json").is_file():
                raise
        return got
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_tree(ref: GitRef, tree: Path, commit: str) -> None:
    """Before checkout: no link or submodule on the way to the kit folder or in it, and
    no more files or bytes than a kit may ship."""
    listing = _git(["ls-tree", "-r", "-t", "-l", "-z", commit], ref, tree)
    sub = ref.subdir or ""
    count = total = 0
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, _kind, _obj, size = meta.split(maxsplit=3)
        on_the_way = sub == path or sub.startswith(path + "/")
        inside = not sub or path.startswith(sub + "/")
        if mode in (_LINK, _SUBMODULE) and (on_the_way or inside):
            what = "a symlink" if mode == _LINK else "a submodule"
            raise _fail(
                ref.text,
                f"'{path}' in {ref.url} is {what}: kits may not ship links or submodules; "
                "make it a real folder or file in the repository",
            )
        if inside and size.strip().isdigit():
            count += 1
            total += int(size)
    if count > MAX_KIT_FILES or total > MAX_KIT_BYTES:
        raise _fail(
            ref.text,
            f"the kit folder holds more than {MAX_KIT_FILES} files or "
            f"{MAX_KIT_BYTES >> 20} MiB: name a smaller folder after ':'",
        )


def fetched(text: str) -> dict[str, object] | None:
    """Where a reference fetched by this process came from, for `kit inspect`."""
    found = _fetched.get(text)
    return asdict(found) if found is not None else None


def fetched_tree(folder: Path) -> Path | None:
    """The checked-out tree holding ``folder`` when it was fetched from git, else None."""
    try:
        rel = folder.resolve().relative_to(_cache_root().resolve())
    except ValueError:
        return None
    return _cache_root().resolve() / rel.parts[0] / "tree" if rel.parts else None


def pinned(text: str) -> str:
    """A reference fetched by this process, pinned to the commit it resolved to: what a
    sandbox records, so that its later starts use the same kit, from the cache, with no
    network (a commit is never looked up)."""
    found = _fetched.get(text)
    if found is None:
        return text
    return f"{PREFIX}{found.url}#{found.commit}" + (f":{found.subdir}" if found.subdir else "")
