"""Where one machine's files and sockets are, and the TCG cache size a process asked for."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sandkit.vm import qemu


@dataclass(frozen=True)
class MachinePaths:
    """Files of one machine. Sockets live in a short directory (unix paths max 107 bytes)."""

    state: Path
    sockets: Path

    @property
    def disk(self) -> Path:
        return self.state / "disk.qcow2"

    @property
    def console(self) -> Path:
        return self.state / "console.log"

    @property
    def qemu_log(self) -> Path:
        return self.state / "qemu.log"

    @property
    def qmp(self) -> Path:
        return self.sockets / "qmp.sock"

    @property
    def agent(self) -> Path:
        return self.sockets / "agent.sock"

    @property
    def share_socket(self) -> Path:
        return self.sockets / "share.sock"

    def host_share_socket(self, n: int) -> Path:
        """The ``n``th host-mount@1 share's virtiofsd socket (tag qemu.host_share_tag(n))."""
        return self.sockets / f"{qemu.host_share_tag(n)}.sock"


def tb_size_override() -> int | None:
    """$SANDKIT_TB_SIZE_MIB: TCG's translation cache for the VMs this process starts (the
    bench measures the trade-off with it); unset, qemu.TB_SIZE_MIB's."""
    value = os.environ.get("SANDKIT_TB_SIZE_MIB", "")
    return int(value) if value.isdigit() and int(value) > 0 else None
