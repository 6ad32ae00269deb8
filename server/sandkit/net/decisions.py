"""Decision records: one per request or connection, appended to a JSONL log and pushed
to in-process subscribers (the supervisor, the language server)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO


@dataclass
class Decision:
    sandbox: str
    method: str
    scheme: str  # http | https (intercepted) | tunnel
    host: str
    port: int
    action: str  # allowed | blocked
    reason: str
    path: str | None = None
    rule: str | None = None
    origin: str | None = None  # kit (file:line:col) of the deciding rule
    credentials: list[str] = field(default_factory=list)  # service names, never values
    status: int | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    latency_ms: float = 0.0
    warnings: list[str] = field(default_factory=list)
    time: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    )

    def to_json(self) -> str:
        # Not dataclasses.asdict: its deep copies cost more than the request did.
        return json.dumps({name: getattr(self, name) for name in _FIELDS}, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Decision:
        data: dict[str, Any] = json.loads(line)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


_FIELDS = tuple(f.name for f in fields(Decision))


class DecisionLog:
    """Appends records to ``path`` (if any). Readers (`policy log --follow`, the editor's
    watcher) tail the file: it is the one place decisions go."""

    FLUSH_S = 0.2

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._file: TextIO | None = None
        self._flush: asyncio.TimerHandle | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a")

    def record(self, decision: Decision) -> None:
        if self._file is not None:
            self._file.write(decision.to_json() + "\n")
            # Batch the writes: flushed within FLUSH_S, not one system call per request.
            if self._flush is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    self.flush()
                else:
                    self._flush = loop.call_later(self.FLUSH_S, self.flush)

    def flush(self) -> None:
        self._flush = None
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._file is not None:
            self._file.close()
            self._file = None


def read_log(path: Path) -> list[Decision]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(Decision.from_json(line))
        except (ValueError, TypeError):
            continue  # a torn last line after a crash
    return out
