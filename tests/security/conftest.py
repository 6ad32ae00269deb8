"""Fixtures the security cases share with the integration tests: the trustme origins on
loopback, and an environment whose sandkit state and configuration are the test's own."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import origins, trust_ca

__all__ = ["cli_env", "mode", "open_umask", "origins", "trust_ca"]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most careless umask a user could have: modes must not depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)
