"""State on disk: a sandbox's folder (share copy, trash, journal, decisions, config) is
reachable by its owner alone whatever the umask, and per-user folders in shared places
(/tmp, /dev/shm) are refused when another user made them first or left them open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandkit.errors import SandkitError
from sandkit.paths import private_dir
from sandkit.sandbox.store import Config, Store
from sandkit.sync.journal import Journal
from tests.security.conftest import mode


def test_sandbox_state_is_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    store = Store(tmp_path / "sandboxes")
    sandbox = store.new(Config(name="sb", agent="shell"))
    sandbox.save_config(Config(name="sb", agent="shell"))
    assert mode(tmp_path / "sandboxes") == 0o700
    assert mode(sandbox.dir) == 0o700
    assert mode(sandbox.dir / "config.json") == 0o600
    journal = Journal(sandbox.dir / "sync" / "sync.db")
    journal.close()
    assert mode(sandbox.dir / "sync") == 0o700
    assert mode(sandbox.dir / "sync" / "sync.db") == 0o600


def test_a_private_folder_is_made_0700(tmp_path: Path, open_umask: None) -> None:
    assert mode(private_dir(tmp_path / "sandkit-1", "test")) == 0o700


def test_a_shared_folder_left_open_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sandkit-1"
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    with pytest.raises(SandkitError, match="not a private folder of yours"):
        private_dir(path, "test")


def test_a_link_planted_in_its_place_is_refused(tmp_path: Path) -> None:
    (tmp_path / "attacker").mkdir(mode=0o700)
    (tmp_path / "sandkit-1").symlink_to(tmp_path / "attacker")
    with pytest.raises(SandkitError, match="not a private folder of yours"):
        private_dir(tmp_path / "sandkit-1", "test")


def test_a_folder_another_user_made_first_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        path = tmp_path / "sandkit-1"
        path.mkdir(mode=0o700)
        os.chown(path, 65534, 65534)  # nobody: the attacker got there first
    else:
        path = Path("/root")  # 0700 and root's: an ordinary user meets another's folder
    with pytest.raises(SandkitError, match="not a private folder of yours"):
        private_dir(path, "test")


def test_no_leaf_key_is_left_in_the_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ssl module loads a TLS key only from a file. The sandbox CA's leaf key once sat
    in /tmp for the life of every proxy, and stayed there after a crash or a kill (930 such
    folders on this machine after a day of tests): now it is on disk only while a context
    loads it."""
    import ssl
    import tempfile

    from sandkit.net.tls import CertificateAuthority

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    context = ca.server_context("api.test")
    assert isinstance(context, ssl.SSLContext)
    assert ca.server_context("API.test") is context  # cached, nothing written again
    ca.server_context("other.test")
    assert list(scratch.iterdir()) == []
