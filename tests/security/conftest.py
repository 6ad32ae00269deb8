"""Fixtures the security cases share with the integration tests: the trustme origins on
loopback, and an environment whose sandkit state and configuration are the test's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.conftest import origins, trust_ca

__all__ = ["cli_env", "origins", "trust_ca"]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
