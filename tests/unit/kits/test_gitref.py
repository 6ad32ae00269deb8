"""Kits named by git reference: parsed, fetched one commit deep into the cache (keyed by
URL and commit), used by --kit, agents and ``extends:``; a local bare repository stands in
for a host (git+file://), so no network is needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sandkit.kits import KitError, load_ref, resolve
from sandkit.kits.gitref import GitRef, fetch, fetched, parse
from tests.kitrepo import AGENT, commit_more, git, make_repo

MIXIN = (
    'schemaVersion: "2"\nkind: mixin\nname: {name}\npermissions:\n  network:\n    allow: [{host}]\n'
)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "sandkit" / "kits" / "git"


@pytest.mark.parametrize(
    ("text", "url", "ref", "subdir"),
    [
        ("git+https://github.com/o/kits", "https://github.com/o/kits", None, None),
        ("git+https://github.com/o/kits.git#v1.2", "https://github.com/o/kits.git", "v1.2", None),
        ("git+https://h.test/o/k#main:kits/claude", "https://h.test/o/k", "main", "kits/claude"),
        ("git+https://h.test/o/k:kits/claude/", "https://h.test/o/k", None, "kits/claude"),
        ("git+https://h.test:8443/o/k#feature/x:a", "https://h.test:8443/o/k", "feature/x", "a"),
        ("git+file:///srv/kits.git#main:sub", "file:///srv/kits.git", "main", "sub"),
    ],
)
def test_references_parse(text: str, url: str, ref: str | None, subdir: str | None) -> None:
    assert parse(text) == GitRef(text, url, ref, subdir)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("git+http://h.test/o/k", "not a git kit reference sandkit fetches; write git+https://"),
        ("git+ssh://h.test/o/k", "not a git kit reference sandkit fetches"),
        ("git+https:///o/k", "no host in the reference"),
        ("git+https://h.test/", "no repository path"),
        ("git+file://host/srv/k", "git+file:///PATH (three /)"),
        ("git+https://u:secret@h.test/o/k", "a password in the URL"),
        ("git+https://h.test/o/k#", "'' is not a branch, tag or commit name"),
        ("git+https://h.test/o/k#a..b", "'a..b' is not a branch"),
        ("git+https://h.test/o/k#main:/etc", "SUBDIR '/etc' is not a folder inside"),
        ("git+https://h.test/o k", "spaces or control characters"),
    ],
)
def test_bad_references_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(KitError, match="error: .*" + re.escape(message)):
        parse(text)


def test_a_kit_is_fetched_once_per_commit_and_shown(tmp_path: Path, cache: Path) -> None:
    bare = make_repo(tmp_path, {"kits/a/spec.yaml": AGENT.format(name="a")})
    ref = f"git+file://{bare}#main:kits/a"
    folder = fetch(ref)
    commit = git("rev-parse", "main", cwd=bare).strip()
    assert folder.parent.parent.parent.name.endswith(f"-{commit}")
    assert (folder / "spec.yaml").read_text() == AGENT.format(name="a")
    assert not (folder.parent.parent / ".git").exists()  # a tree, not a repository
    info = fetched(ref)
    assert info is not None and info["commit"] == commit and info["subdir"] == "kits/a"
    (folder / "marker").write_text("cached")
    assert fetch(ref) == folder and (folder / "marker").exists()  # same commit: not fetched
    newer = commit_more(bare, "kits/a/spec.yaml", AGENT.format(name="a2"))
    moved = fetch(ref)
    assert moved != folder and moved.parent.parent.parent.name.endswith(f"-{newer}")
    assert "name: a2" in (moved / "spec.yaml").read_text()
    assert len(list(cache.iterdir())) == 2  # both commits, no leftovers of the fetches


def test_a_commit_or_tag_can_be_named(tmp_path: Path) -> None:
    bare = make_repo(tmp_path, {"spec.yaml": AGENT.format(name="top")})
    first = git("rev-parse", "main", cwd=bare).strip()
    git("tag", "v1", first, cwd=bare)
    commit_more(bare, "spec.yaml", AGENT.format(name="later"))
    assert load_ref(f"git+file://{bare}#v1").kit.name == "top"
    assert load_ref(f"git+file://{bare}#{first}").kit.name == "top"
    assert load_ref(f"git+file://{bare}").kit.name == "later"  # HEAD


def test_missing_branch_or_folder_say_what_to_do(tmp_path: Path) -> None:
    bare = make_repo(tmp_path, {"kits/a/spec.yaml": AGENT.format(name="a")})
    with pytest.raises(KitError, match="no branch or tag 'nope' in file://"):
        fetch(f"git+file://{bare}#nope")
    with pytest.raises(
        KitError, match=r"no spec.yaml in 'kits/b' of file://.*name the kit's folder"
    ):
        fetch(f"git+file://{bare}#main:kits/b")
    with pytest.raises(KitError, match=r"no spec.yaml in the repository's top folder"):
        fetch(f"git+file://{bare}")
    with pytest.raises(KitError, match=r"git fetch failed|git ls-remote failed"):
        fetch(f"git+file://{tmp_path}/missing.git")


def test_agents_mixins_and_extends_accept_git_references(tmp_path: Path) -> None:
    bare = make_repo(
        tmp_path,
        {
            "kits/a/spec.yaml": AGENT.format(name="a"),
            "kits/m/spec.yaml": MIXIN.format(name="m", host="m.test"),
            "kits/child/spec.yaml": 'schemaVersion: "2"\nkind: sandbox\nname: child\n'
            "extends: ../a\n",
            "kits/remote/spec.yaml": 'schemaVersion: "2"\nkind: sandbox\nname: remote\n'
            f"extends: git+file://{tmp_path}/repo.git#main:kits/a\n",
        },
    )
    url = f"git+file://{bare}#main"
    resolution = resolve(f"{url}:kits/a", [f"{url}:kits/m"])
    assert resolution.sandbox.agent_name == "a"
    assert [r.pattern for r in resolution.sandbox.network.allow] == ["m.test"]
    for child in ("child", "remote"):  # a folder inside the repository, another reference
        agent = resolve(f"{url}:kits/{child}").sandbox.agent
        assert agent.entrypoint == ("bash",) and agent.resources.cpus == 1


def test_local_extends_paths_are_relative_to_the_kit(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "spec.yaml").write_text(AGENT.format(name="base"))
    (tmp_path / "kids" / "kid").mkdir(parents=True)
    (tmp_path / "kids" / "kid" / "spec.yaml").write_text(
        'schemaVersion: "2"\nkind: sandbox\nname: kid\nextends: ../../base\n'
    )
    assert resolve(str(tmp_path / "kids" / "kid")).sandbox.agent.entrypoint == ("bash",)


def test_one_kit_name_from_two_references_is_an_error(tmp_path: Path) -> None:
    bare = make_repo(tmp_path, {"m/spec.yaml": MIXIN.format(name="m", host="a.test")})
    local = tmp_path / "local-m"
    local.mkdir()
    (local / "spec.yaml").write_text(MIXIN.format(name="m", host="b.test"))
    remote = f"git+file://{bare}#main:m"
    named = f"kit 'm' is named twice, by '{remote}' and by '{local}': keep one of them"
    with pytest.raises(KitError, match=re.escape(named)):
        resolve("shell", [remote, str(local)])
