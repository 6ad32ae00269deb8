"""How listings show spans of time (ls UPTIME, pool status AGE and BUILT)."""

from __future__ import annotations

import time

import pytest

from sandkit.ui import duration, since


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0m00s"), (65.9, "1m05s"), (3599, "59m59s"), (3600, "1h00m"),
     (7322, "2h02m"), (-3, "0m00s")],
)  # fmt: skip
def test_duration(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_since() -> None:
    assert since(None) == "-"
    assert since(time.time() - 125) in ("2m05s", "2m06s")
