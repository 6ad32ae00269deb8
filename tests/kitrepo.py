"""Local git repositories holding kits, for tests of git kit references (no network)."""

from __future__ import annotations

import subprocess
from pathlib import Path

AGENT = (
    'schemaVersion: "2"\nkind: sandbox\nname: {name}\nsandbox:\n'
    "  image: docker/sandbox-templates:shell\n  entrypoint: [bash]\n"
    "  resources: {{cpu: 1, memory: 640m}}\n"
)


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def make_repo(root: Path, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    """A bare repository (``root``/repo.git) with ``files`` (path → text) and symlinks
    (path → target) committed on ``main``; returns the bare repository."""
    work = root / "work"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    for rel, target in (links or {}).items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).symlink_to(target)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "kits", cwd=work)
    bare = root / "repo.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    return bare


def commit_more(bare: Path, rel: str, text: str) -> str:
    """Push one more commit changing ``rel`` to ``main``; returns its id."""
    work = bare.parent / "more"
    if not work.exists():
        git("clone", "-q", str(bare), str(work), cwd=bare.parent)
    else:
        git("pull", "-q", cwd=work)
    (work / rel).parent.mkdir(parents=True, exist_ok=True)
    (work / rel).write_text(text)
    git("commit", "-q", "-am", "more", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()
