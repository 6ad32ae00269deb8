"""The guest channel's framing: JSON lines on the virtio-serial port, with bytes as base64.
binascii rather than base64, which imports more (each import costs time under TCG)."""

from __future__ import annotations

import binascii

PORT_NAME = "org.sandkit.agent"
READ = 65536  # bytes read (and written) at a time, on the port and on children's fds


def b64encode(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False)


def b64decode(data: str | bytes) -> bytes:
    return binascii.a2b_base64(data)


def output_event(rid: object, stream: str, data: bytes) -> dict[str, object]:
    """What a child wrote, as the host reads it."""
    return {"op": "output", "id": rid, "stream": stream, "data": b64encode(data).decode()}


def split_lines(buffer: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines in what was kept plus what arrived, and the rest to keep."""
    *lines, rest = (buffer + data).split(b"\n")
    return lines, rest
