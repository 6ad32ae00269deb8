"""A sandbox's shape (CPUs, memory) from the flags, the agent kit's resources and the host
(pure: the host's numbers are passed in). Flags win; then the kit; then a default scaled
to the host, as sbx does: half its memory up to 8 GiB, its CPUs minus one (at least 1).
A kit cannot ask for more than the host has: it gets what the host can give, and is told."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sandkit.kits.model import Resources

MAX_DEFAULT_MEMORY_MIB = 8 << 10
MIN_MEMORY_MIB = 256


@dataclass(frozen=True)
class Shape:
    cpus: int
    memory_mib: int
    cpus_why: str
    memory_why: str
    notes: tuple[str, ...] = ()  # a kit's request the host cannot meet, said once

    def describe(self) -> dict[str, object]:
        return {
            "cpus": self.cpus,
            "memoryMiB": self.memory_mib,
            "why": {"cpus": self.cpus_why, "memory": self.memory_why},
        }


def default_cpus(host_cpus: int) -> int:
    return max(host_cpus - 1, 1)


def default_memory_mib(host_memory_mib: int | None) -> int:
    if host_memory_mib is None:  # unknown host: what sandkit asked for before
        return 1024
    return max(min(host_memory_mib // 2, MAX_DEFAULT_MEMORY_MIB), MIN_MEMORY_MIB)


def choose(
    cpus: int | None,
    memory_mib: int | None,
    resources: Resources,
    kit: str,
    host_cpus: int,
    host_memory_mib: int | None,
) -> Shape:
    """``cpus``/``memory_mib``: the flags (None when not given); ``kit``: the agent kit's
    name, for the reasons given."""
    notes: list[str] = []
    if cpus is not None:
        n_cpus, cpus_why = cpus, "--cpus"
    elif resources.cpus:
        wanted = math.ceil(resources.cpus)  # a vCPU is whole: 0.5 CPU is one
        n_cpus, cpus_why = wanted, f"kit '{kit}' resources ({resources.cpus:g} CPU)"
        if wanted > host_cpus:
            n_cpus = host_cpus
            notes.append(
                f"kit '{kit}' asks for {wanted} CPUs; this machine gives sandkit {host_cpus}: "
                f"using {host_cpus} (give --cpus to choose)"
            )
    else:
        n_cpus = default_cpus(host_cpus)
        cpus_why = f"default: this machine's {host_cpus} CPU(s) minus one, at least 1"
    if memory_mib is not None:
        mib, memory_why = memory_mib, "--memory"
    elif resources.memory_bytes:
        wanted_mib = max(-(-resources.memory_bytes // (1 << 20)), MIN_MEMORY_MIB)
        mib, memory_why = wanted_mib, f"kit '{kit}' resources ({wanted_mib} MiB)"
        limit = host_memory_mib // 2 if host_memory_mib is not None else None
        if limit is not None and wanted_mib > limit:
            mib = max(limit, MIN_MEMORY_MIB)
            notes.append(
                f"kit '{kit}' asks for {wanted_mib} MiB of memory; this machine has "
                f"{host_memory_mib} MiB: using {mib} MiB, half of it (give --memory to choose)"
            )
    else:
        mib = default_memory_mib(host_memory_mib)
        memory_why = (
            "default: half this machine's memory, at most 8 GiB"
            if host_memory_mib is not None
            else "default (this machine's memory is unknown)"
        )
    return Shape(n_cpus, mib, cpus_why, memory_why, tuple(notes))
