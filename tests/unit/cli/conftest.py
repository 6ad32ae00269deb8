"""The supervisor's test fixtures (a state home, the in-memory guest), for the CLI's
clients of it."""

from tests.unit.sandbox.test_supervisor import config_home, home

__all__ = ["config_home", "home"]
