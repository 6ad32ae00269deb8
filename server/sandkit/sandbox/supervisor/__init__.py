"""The supervisor: one background process per sandbox (like a containerd shim). It owns
the VM (QEMU, virtiofsd), the egress proxy, the workspace's sync, and the control socket
through which the CLI and the language server reach the sandbox; it outlives the client
that started it.

    python -m sandkit.sandbox.supervisor NAME [IMAGE_DIR]   (the CLI passes the image it built)

By job: process (state machine, tasks, the one ending), boot, adopt (warm pool), guest
(environment, CA, kits), workspace (sync), egress (the proxy), approvals, control (the
socket and its handler table)."""

from __future__ import annotations

from sandkit.sandbox.supervisor.process import Ending, MachineFactory, Supervisor

__all__ = ["Ending", "MachineFactory", "Supervisor"]
