"""The editor's settings as the server reads them: camelCase keys under "sandkit", each
taken only with the right type (a wrong one keeps the current value, never raises)."""

from __future__ import annotations

from typing import Any

import pytest

from sandkit.lsp.server import Settings


def test_each_setting_is_read_under_sandkit() -> None:
    s = Settings()
    s.update(
        {
            "sandkit": {
                "defaultAgent": "claude",
                "defaultKits": ["python-dev", 3],
                "docker": True,
                "approvalTimeout": 5,
                "debounceMs": 0,
                "workspaceTrusted": True,
            }
        }
    )
    assert s == Settings(
        default_agent="claude",
        default_kits=["python-dev", "3"],
        docker=True,
        approval_timeout=5.0,
        debounce_ms=0.0,
        workspace_trusted=True,
    )


def test_the_settings_may_come_without_the_section() -> None:
    s = Settings()
    s.update({"docker": True})
    assert s.docker


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {"sandkit": "x"},
        {"sandkit": {"docker": "yes"}},
        {"sandkit": {"defaultAgent": 1, "defaultKits": "python-dev"}},
        {"sandkit": {"approvalTimeout": -1, "debounceMs": "5"}},
        {"sandkit": {"workspaceTrusted": 1}},
    ],
)
def test_a_wrong_type_changes_nothing(raw: Any) -> None:
    s = Settings()
    s.update(raw)
    assert s == Settings()
