"""sandkit: AI coding agents in QEMU microVMs, with sbx-compatible kits."""

from __future__ import annotations

__version__ = "0.1.0"
# Nothing else: every CLI start imports this. Loggers get their NullHandler from
# sandkit/logs.py, which whatever logs imports.
