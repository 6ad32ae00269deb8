"""Sizes as kits and the command line write them (pure, and light to import: the CLI
parses --memory before it needs the kit engine)."""

from __future__ import annotations

import re
from fractions import Fraction

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'8g', '4096m', '512MiB', '1.5g', '1024' (bytes) → bytes, exactly. Raises ValueError.

    Decimal fractions are read as exact rationals (never floats), so two spellings of one
    size compare equal and two different sizes never do; a size that is not a whole
    number of bytes is refused rather than rounded."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(text)
    value = Fraction(match.group(1)) * _UNITS[match.group(2).lower()]
    if value.denominator != 1:
        raise ValueError(f"{text} is not a whole number of bytes")
    return int(value)
