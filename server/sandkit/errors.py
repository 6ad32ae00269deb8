"""The one root of every error sandkit raises on purpose.

    SandkitError
     ├── KitError            a kit could not be read, validated or composed (carries positioned issues)
     ├── SetupError          the host lacks something sandkit needs (a package, a directory)
     └── ProxyError          the egress proxy cannot start or serve (CA, listen address, secrets)

A ``SandkitError`` is the user's (or the host's) problem, reported as a message and exit
status 1, never as a traceback. Anything else escaping is a bug in sandkit.
"""

from __future__ import annotations


class SandkitError(Exception):
    """Root of sandkit's errors; ``str(error)`` is written for the person reading it."""


class SetupError(SandkitError):
    """The host is missing something sandkit needs; the message says how to get it."""


class ProxyError(SandkitError):
    """The egress proxy cannot do its job; it fails closed and says why."""
