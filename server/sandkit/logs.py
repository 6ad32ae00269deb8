"""sandkit's loggers. As a library's should, they stay silent unless the program
configures logging (a NullHandler on "sandkit"; without one, Python prints warnings on
stderr). The handler is added here, by the first module that logs, rather than by
sandkit/__init__: a path that never logs (the one-shot `sandkit exec`) then never pays
for importing logging."""

from __future__ import annotations

import logging

logging.getLogger("sandkit").addHandler(logging.NullHandler())


def logger(name: str) -> logging.Logger:
    """The logger ``name`` (under "sandkit"), once the handler above is in place."""
    return logging.getLogger(name)
