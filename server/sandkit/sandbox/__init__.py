"""Sandboxes: the on-disk store, the supervisor that owns one sandbox's VM and proxy, and
the client that the CLI and the language server use to talk to it."""
