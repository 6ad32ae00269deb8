"""Where a secret must not be: a sandbox's files and its guest's memory, scanned for the
exact bytes (the credential and OAuth tests share these)."""

from __future__ import annotations

from pathlib import Path

from sandkit.sandbox.client import SupervisorClient
from sandkit.sandbox.store import Store


async def memory_dump(name: str) -> Path:
    """The guest memory of the running sandbox ``name``, dumped by its supervisor."""
    async with await SupervisorClient.connect(Store().get(name).control) as client:
        return Path((await client.dump_memory()).path)


def file_contains(path: Path, needle: bytes) -> bool:
    """Whether ``needle`` occurs in the file, read in 16 MiB chunks (a dump is as large as
    the guest's memory); a match across two chunks counts."""
    overlap = len(needle) - 1
    tail = b""
    with path.open("rb") as f:
        while chunk := f.read(16 << 20):
            if needle in tail + chunk:
                return True
            tail = chunk[-overlap:]
    return False
