"""A running sandbox's proxy decisions, read as its decisions.jsonl grows: each one goes to
the client (sandkit/decision, for a live log), and their tallies become diagnostics on the
kit lines that decided them (allowed by this rule, blocked by this rule) or, for hosts no
rule allowed, on the network section of the sandbox's first own kit."""

from __future__ import annotations

import collections
import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sandkit.kits.issues import KitError
from sandkit.kits.yamlpos import parse
from sandkit.lsp import protocol
from sandkit.lsp.kitdocs.cursor import schema_version
from sandkit.lsp.kitdocs.edits import NETWORK_POLICY
from sandkit.sandbox.store import Sandbox

if TYPE_CHECKING:
    from sandkit.lsp.server import SandkitServer

SOURCE = "decisions"
_ORIGIN = re.compile(r"^(?P<kit>\S+) \((?P<file>.+):(?P<line>\d+):(?P<col>\d+)\)$")
BLOCKED_REASONS = ("default-deny", "deny-rule", "refused-by-user")


@dataclass
class Tally:
    count: int = 0
    credentials: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)


@dataclass
class Decisions:
    sandbox: Sandbox
    kit_files: list[Path]  # the sandbox's own kits (not built-in), where fixes can go
    offset: int = 0
    allowed: dict[tuple[str, int, int, str], Tally] = field(default_factory=dict)
    blocked: dict[str, Tally] = field(default_factory=dict)
    denied_by_rule: dict[tuple[str, int, int, str], Tally] = field(default_factory=dict)
    recent: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    uris: set[str] = field(default_factory=set)  # documents that carry our diagnostics

    @property
    def source(self) -> str:
        return f"{SOURCE}:{self.sandbox.name}"

    def read(self, server: SandkitServer) -> None:
        path = self.sandbox.dir / "decisions.jsonl"
        try:
            with path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        if end == 0:
            return
        self.offset += end
        records = []
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        for record in records:
            self._count(record)
            self.recent.append(record)
            params: protocol.DecisionParams = {"sandbox": self.sandbox.name, "record": record}
            server.protocol.notify(protocol.DECISION, params)
        if records:
            self.publish(server)

    def _count(self, record: dict[str, Any]) -> None:
        origin = _ORIGIN.match(str(record.get("origin") or ""))
        host = str(record.get("host"))
        if record.get("action") == "allowed" and origin is not None:
            key = (origin["file"], int(origin["line"]), int(origin["col"]), host)
            tally = self.allowed.setdefault(key, Tally())
        elif record.get("action") == "blocked" and record.get("reason") in BLOCKED_REASONS:
            if record.get("reason") == "deny-rule" and origin is not None:
                key = (origin["file"], int(origin["line"]), int(origin["col"]), host)
                tally = self.denied_by_rule.setdefault(key, Tally())
            else:
                tally = self.blocked.setdefault(host, Tally())
        else:
            return
        tally.count += 1
        tally.credentials.update(record.get("credentials") or [])
        tally.reasons.add(str(record.get("reason")))

    def publish(self, server: SandkitServer) -> None:
        per_uri: dict[str, list[types.Diagnostic]] = {}
        for (file, line, col, host), tally in self.allowed.items():
            message = f"{host}: {_requests(tally.count)} allowed"
            if tally.credentials:
                message += f", credential {', '.join(sorted(tally.credentials))} injected"
            per_uri.setdefault(Path(file).resolve().as_uri(), []).append(
                _at(line, col, message, types.DiagnosticSeverity.Information, "allowed-host")
            )
        for (file, line, col, host), tally in self.denied_by_rule.items():
            per_uri.setdefault(Path(file).resolve().as_uri(), []).append(
                _at(
                    line,
                    col,
                    f"{host}: {_requests(tally.count)} blocked by this rule",
                    types.DiagnosticSeverity.Information,
                    "denied-host",
                )
            )
        for spec in self.kit_files[:1]:  # the sandbox's first own kit: where a fix goes
            anchor = network_anchor(spec)
            for host, tally in self.blocked.items():
                why = ", ".join(sorted(tally.reasons))
                diag = _at(
                    anchor[0] + 1,
                    anchor[1] + 1,
                    f"{_requests(tally.count)} to {host} blocked ({why}) in sandbox "
                    f"{self.sandbox.name}",
                    types.DiagnosticSeverity.Warning,
                    "blocked-host",
                    length=anchor[2],
                )
                diag.data = {"host": host, "sandbox": self.sandbox.name}
                per_uri.setdefault(spec.as_uri(), []).append(diag)
        for uri in self.uris - set(per_uri):
            server.publish(uri, self.source, [])
        for uri, diagnostics in per_uri.items():
            server.publish(uri, self.source, diagnostics)
        self.uris = set(per_uri)

    def clear(self, server: SandkitServer) -> None:
        for uri in self.uris:
            server.publish(uri, self.source, [])


def _requests(count: int) -> str:
    return f"{count} request{'s' if count != 1 else ''}"


def _at(
    line: int,
    col: int,
    message: str,
    severity: types.DiagnosticSeverity,
    code: str,
    length: int = 0,
) -> types.Diagnostic:
    """A diagnostic at a 1-based line:col (as decision records name kit rules)."""
    start = types.Position(max(line - 1, 0), max(col - 1, 0))
    end = types.Position(start.line, start.character + length) if length else start
    return types.Diagnostic(
        range=types.Range(start, end),
        message=message,
        severity=severity,
        code=code,
        source="sandkit",
    )


def network_anchor(spec: Path) -> tuple[int, int, int]:
    """0-based line, column and length of the kit's network section key (or its first
    line): where warnings about blocked hosts are shown."""
    try:
        text = spec.read_text()
        located = parse(text, str(spec))
    except (OSError, KitError):
        return 0, 0, 0
    version = schema_version(text)
    data = located.data if isinstance(located.data, dict) else {}
    if version == "3":
        for i, cap in enumerate(data.get("capabilities") or []):
            if isinstance(cap, dict) and cap.get("type") in NETWORK_POLICY:
                span = located.values[("capabilities", i)]
                return span.line, span.column, len("type")
    for path in (("permissions", "network"), ("network",), ("permissions",)):
        if path in located.keys:
            span = located.keys[path]
            return span.line, span.column, span.end_column - span.column
    return 0, 0, 0
