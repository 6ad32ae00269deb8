"""Which paths the host runs (held for a person when the sandbox changes them), and which
changes to .git/config run nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandkit.sync.protect import (
    DEFAULTS,
    USER_FILE,
    Protected,
    git_config_change_is_safe,
    git_config_pairs,
    is_git_config,
)

HELD = [
    ".git/hooks/pre-commit",
    "vendor/lib/.git/hooks/post-checkout",  # a nested repository's hooks too
    ".git/config",
    "sub/.git/config",
    ".git/info/attributes",
    ".git/modules/dep/config",
    ".git/modules/dep/hooks/pre-push",
    ".gitmodules",
    ".gitattributes",
    ".vscode/tasks.json",
    ".vscode/settings.json",
    ".devcontainer/devcontainer.json",
    ".devcontainer.json",
    ".idea/workspace.xml",
    ".envrc",
    "sub/.envrc",  # patterns without a slash match at any depth
    ".sandkit.yaml",
    ".sandkitignore",
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pypirc",
    "pip.conf",
    ".pre-commit-config.yaml",
    ".mise.toml",
]
FREE = [
    "README.md",
    "src/main.py",
    ".git/objects/ab/cdef",  # git's data runs nothing
    ".git/HEAD",
    ".git/refs/heads/main",
    ".gitignore",
    "docs/vscode/tasks.json",
    ".envrc.example",
    "bashrc",
    ".git/modules/dep/HEAD",
]


@pytest.mark.parametrize("path", HELD)
def test_paths_the_host_runs_are_protected(path: str) -> None:
    assert Protected(DEFAULTS)(path)


@pytest.mark.parametrize("path", FREE)
def test_ordinary_paths_are_not(path: str) -> None:
    assert not Protected(DEFAULTS)(path)


def test_the_user_file_adds_and_removes_patterns(tmp_path: Path) -> None:
    (tmp_path / USER_FILE).write_text("Makefile\n!.vscode/**\n# a comment\n")
    protected = Protected.for_user(tmp_path, extra=["kits/**"])
    assert protected("Makefile") and protected("sub/Makefile")
    assert not protected(".vscode/tasks.json")  # the user took a default out
    assert protected("kits/mine/spec.yaml")  # a kit folder the workspace uses
    assert protected(".envrc")
    assert protected.patterns[: len(DEFAULTS)] == list(DEFAULTS)
    assert protected.patterns[len(DEFAULTS) :] == [
        "kits/**",
        "Makefile",
        "!.vscode/**",
        "# a comment",
    ]


def test_without_a_user_file_the_defaults_hold(tmp_path: Path) -> None:
    protected = Protected.for_user(tmp_path / "missing")
    assert protected.patterns == list(DEFAULTS)
    assert protected(".git/hooks/pre-commit") and not protected("README.md")


def test_is_git_config() -> None:
    assert is_git_config(".git/config") and is_git_config("a/b/.git/config")
    assert not is_git_config("x.git/config") and not is_git_config(".git/config.lock")
    assert not is_git_config("git/config")


CONFIG = """\
# a comment
[core]
\trepositoryformatversion = 0
\tFileMode = true ; trailing words are part of the value
\tbare
\tXkey = 1
[remote "Origin"]
\turl = https://example.test/r.git
\tfetch = +refs/heads/*:refs/remotes/origin/* \\
more
[Branch "main"] ; a comment after the header
\tremote = origin
"""


def test_git_config_is_read_as_git_names_its_keys() -> None:
    assert git_config_pairs(CONFIG) == [
        ("core.repositoryformatversion", "0"),
        ("core.filemode", "true ; trailing words are part of the value"),
        ("core.bare", "true"),  # a bare key means true
        ("core.xkey", "1"),
        ('remote."Origin".url', "https://example.test/r.git"),
        ('remote."Origin".fetch', "+refs/heads/*:refs/remotes/origin/* more"),
        ('branch."main".remote', "origin"),
    ]
    assert git_config_pairs("") == []
    assert git_config_pairs("[core] bare = true\n") == [("core.bare", "true")]
    assert git_config_pairs("[core] Xbare = true\n") == [("core.xbare", "true")]
    assert git_config_pairs("[core] ; c\n[user] # c\n") == []


@pytest.mark.parametrize(
    "text",
    [
        "url = x\n",  # a key before any section
        "[core\n\tbare = true\n",
        "[core]\n\t= true\n",
        "[core]\n\t1bad = true\n",
        '[remote "unterminated]\n',
    ],
)
def test_a_config_that_cannot_be_read_plainly_is_not_read(text: str) -> None:
    assert git_config_pairs(text) is None


BASE = '[core]\n\tbare = false\n[remote "origin"]\n\turl = https://example.test/r.git\n'


@pytest.mark.parametrize(
    "added",
    [
        '[branch "main"]\n\tremote = origin\n\tmerge = refs/heads/main\n',
        "[user]\n\tname = Agent\n\temail = a@example.test\n",
        "[pull]\n\trebase = true\n",
        "[push]\n\tautoSetupRemote = true\n",
        "[fetch]\n\tprune = true\n",
        "[init]\n\tdefaultBranch = main\n",
        "[merge]\n\tconflictStyle = zdiff3\n",
        "[rerere]\n\tenabled = true\n",
        "[extensions]\n\tworktreeConfig = true\n",
        "[color]\n\tui = auto\n",
        "[color.diff]\n\tmeta = blue\n",
        "[advice]\n\tdetachedHead = false\n",
        '[remote "fork"]\n\turl = git@example.test:me/r.git\n\tfetch = +refs/*:refs/*\n',
        "[core]\n\tautocrlf = input\n\tsymlinks = true\n",
        '[remote "local"]\n\turl = X-files/repo.git\n',  # a folder named X-files
        '[remote "up"]\n\tpushurl = https://example.test/r.git\n',
    ],
)
def test_ordinary_config_changes_pass(added: str) -> None:
    assert git_config_change_is_safe(BASE, BASE + added)


@pytest.mark.parametrize(
    "added",
    [
        "[core]\n\tfsmonitor = /tmp/evil.sh\n",
        "[core]\n\thooksPath = /tmp/hooks\n",
        "[core]\n\tsshCommand = evil\n",
        "[core]\n\tpager = evil\n",
        "[core]\n\teditor = evil\n",
        '[filter "lfs"]\n\tclean = evil %f\n',
        '[diff "x"]\n\ttextconv = evil\n',
        "[credential]\n\thelper = !evil\n",
        "[include]\n\tpath = /tmp/evil.conf\n",
        "[alias]\n\tst = !evil\n",
        '[remote "x"]\n\turl = ext::sh -c evil\n',
        '[remote "x"]\n\tpushurl = fd::3\n',
        '[remote "x"]\n\turl = "-oProxyCommand=evil"\n',
        '[remote "x"]\n\turl = --upload-pack=evil\n',
        "[colors]\n\tui = auto\n",  # near a safe name is not a safe name
        "[user]\n\tsigningkey = x\n",
        "[core]\n\tfilemodes = true\n",
    ],
)
def test_config_changes_that_can_run_programs_are_held(added: str) -> None:
    assert not git_config_change_is_safe(BASE, BASE + added)


def test_config_judged_on_what_changed() -> None:
    evil = BASE + "[core]\n\tfsmonitor = /tmp/evil.sh\n"
    # Already there on the host: the sandbox editing another line adds nothing that runs.
    assert git_config_change_is_safe(evil, evil + "[user]\n\tname = A\n")
    # Taking a dangerous key out is a change to a key off the list: held as well.
    assert not git_config_change_is_safe(evil, BASE)
    # A new file is judged whole; an unreadable one never passes.
    assert git_config_change_is_safe(None, BASE)
    assert not git_config_change_is_safe(None, evil)
    assert not git_config_change_is_safe(BASE, "[core\n")
    assert not git_config_change_is_safe("[core\n", BASE)
    # A changed URL is judged by its value; an unchanged dangerous one is not the sandbox's.
    ext = '[remote "o"]\n\turl = ext::x\n'
    assert git_config_change_is_safe(ext, ext + "[pull]\n\tff = only\n")
    assert not git_config_change_is_safe(None, ext)
