"""A kit fetched from git is untrusted (invariant 5: nothing a kit names writes or reads
outside it): the reference is checked before git runs, and the fetched tree is refused
when its kit folder is a link, holds one, or is larger than a kit may be."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sandkit.kits import KitError, gitref, resolve
from sandkit.kits.builtin import resolve_ref
from tests.kitrepo import AGENT, make_repo


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def git_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `git` first on PATH that only records that it ran: a reference refused before
    git runs leaves no marker."""
    bin_dir, marker = tmp_path / "bin", tmp_path / "git-ran"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return marker


@pytest.mark.parametrize(
    "ref",
    [
        "git+https://h.test/o/k#--upload-pack=touch${IFS}/tmp/pwned",
        "git+https://h.test/o/k#-oProxyCommand=x",
        "git+file:///tmp/x#--output=/tmp/pwned",
        "git+https://-oProxyCommand=x/o/k",
        "git+file:///-u/x",
        "git+https://h.test/o/k#main:../../etc",
        "git+https://h.test/o/k#main:kits/../../..",
        "git+https://h.test/o/k:/etc",
        "git+ext::sh -c touch% /tmp/pwned",
        "git+ssh://h.test/o/k",
        "git+https://h.test/o/k\n#main",
    ],
)
def test_hostile_references_are_refused_before_git_runs(ref: str, git_marker: Path) -> None:
    with pytest.raises(KitError):
        resolve_ref(ref)
    assert not git_marker.exists()


def test_a_kit_folder_that_is_a_symlink_is_refused(tmp_path: Path, cache: Path) -> None:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "spec.yaml").write_text(AGENT.format(name="outside"))
    bare = make_repo(
        tmp_path,
        {"real/spec.yaml": AGENT.format(name="real")},
        links={"kits/a": str(secret), "kits/b": "../real"},
    )
    for sub in ("kits/a", "kits/b"):
        with pytest.raises(KitError, match=f"'{sub}' in file://.* is a symlink: kits may not"):
            resolve_ref(f"git+file://{bare}#main:{sub}")
    assert not list((cache / "sandkit" / "kits" / "git").glob("*-*"))  # nothing kept


def test_a_link_inside_the_kit_or_a_linked_spec_is_refused(tmp_path: Path) -> None:
    bare = make_repo(
        tmp_path,
        {"k/spec.yaml": AGENT.format(name="k"), "l/files/home/ok": "x"},
        links={"k/files/home/.bashrc": "/etc/passwd", "l/spec.yaml": "../k/spec.yaml"},
    )
    with pytest.raises(KitError, match=r"'k/files/home/.bashrc' in file://.* is a symlink"):
        resolve_ref(f"git+file://{bare}#main:k")
    with pytest.raises(KitError, match=r"'l/spec.yaml' in file://.* is a symlink"):
        resolve_ref(f"git+file://{bare}#main:l")


def test_a_link_elsewhere_in_the_repository_does_not_matter(tmp_path: Path) -> None:
    bare = make_repo(tmp_path, {"k/spec.yaml": AGENT.format(name="k")}, links={"x": "/etc"})
    assert (resolve_ref(f"git+file://{bare}#main:k") / "spec.yaml").is_file()


def test_an_oversized_kit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"k/spec.yaml": AGENT.format(name="k")}
    files |= {f"k/files/home/f{i}": "x" for i in range(5)}
    bare = make_repo(tmp_path, files)
    monkeypatch.setattr(gitref, "MAX_KIT_FILES", 4)
    with pytest.raises(KitError, match="holds more than 4 files"):
        resolve_ref(f"git+file://{bare}#main:k")


def test_a_fetched_kit_cannot_extend_a_folder_of_this_machine(tmp_path: Path) -> None:
    local = tmp_path / "mine"
    local.mkdir()
    (local / "spec.yaml").write_text(AGENT.format(name="mine"))
    bare = make_repo(
        tmp_path / "r",
        {
            "k/spec.yaml": f'schemaVersion: "2"\nkind: sandbox\nname: k\nextends: {local}\n',
            "j/spec.yaml": 'schemaVersion: "2"\nkind: sandbox\nname: j\n'
            "extends: ../../../../../../../mine\n",
        },
    )
    for sub in ("k", "j"):
        with pytest.raises(KitError, match="leaves the repository this kit was fetched from"):
            resolve(f"git+file://{bare}#main:{sub}")
