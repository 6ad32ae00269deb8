"""Network approvals (and notices of held sync changes) in the terminal that runs the agent.

While ``sandkit run`` is attached to a terminal it watches its sandbox's held requests and
asks about each one, one at a time; the key pressed while a question is open answers it
instead of reaching the agent. An answer given elsewhere (``sandkit policy approve``, the
editor) closes the question here too."""

from __future__ import annotations

import collections
import time
from typing import Any, BinaryIO

from sandkit.errors import SandkitError
from sandkit.net.approvals import host_with_port
from sandkit.sandbox.client import SupervisorClient
from sandkit.tasks import spawn

TYPING_GUARD = 0.4  # seconds after a question appears during which keys are not answers
KEYS = {  # key -> (supervisor method, remember for the sandbox)
    b"o": ("approve", False),
    b"y": ("approve", False),
    b"a": ("approve", True),
    b"d": ("deny", False),
    b"n": ("deny", False),
    b"\x03": ("deny", False),  # Ctrl-C while asked: no
}


class ApprovalPrompt:
    def __init__(
        self, client: SupervisorClient, out: BinaryIO, timeout: float, name: str = "NAME"
    ) -> None:
        self.client, self.out, self.timeout, self.name = client, out, timeout, name
        self.waiting: collections.deque[dict[str, Any]] = collections.deque()
        self.current: dict[str, Any] | None = None
        self.asked_at = 0.0

    async def run(self) -> None:
        try:
            await self.client.watch()
        except SandkitError as exc:  # e.g. a supervisor older than this client
            self.say(f"\r\nsandkit: approvals are not available here: {exc}\r\n")
            return
        async for event in self.client.events():  # until the connection ends
            self.on_event(event)

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "sync-held":
            self.tell_held(event)
            return
        if event.get("event") == "approval":
            self.waiting.append(event)
        elif event.get("event") == "approval-done":
            if self.current is not None and self.current["id"] == event["id"]:
                outcome = {"allow": "allowed", "deny": "denied"}.get(event["action"], "denied")
                why = " (no answer in time)" if event["action"] == "timeout" else ""
                self.say(f"{event['host']}: {outcome}{why}\r\n")
                self.current = None
            self.waiting = collections.deque(e for e in self.waiting if e["id"] != event["id"])
        if self.current is None and self.waiting:
            self.current = self.waiting.popleft()
            self.ask(self.current)

    def tell_held(self, event: dict[str, Any]) -> None:
        """Held sync changes: a notice, never a question (keys keep going to the agent)."""
        paths = event.get("paths") or []
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        what = (
            "changes to files your machine runs"
            if event.get("kind") == "protected-held"
            else "a burst of deletions or emptied files"
        )
        self.say(
            f"\r\n\x1b[1msandkit:\x1b[0m held {what} ({shown}); the host keeps its "
            f"versions. Review: sandkit sync pending {self.name}\r\n"
        )

    def ask(self, event: dict[str, Any]) -> None:
        self.asked_at = time.monotonic()
        self.say(
            f"\r\n\x1b[1msandkit:\x1b[0m the agent wants to reach "
            f"\x1b[1m{event['host']}:{event['port']}\x1b[0m, which no rule allows.\r\n"
            "  [o] allow once   [a] allow for this sandbox   [d] deny   "
            f"(denied after {self.timeout:g} s without an answer) "
        )

    async def answer(self, method: str, host: str, remember: bool) -> None:
        try:
            answer = self.client.approve if method == "approve" else self.client.deny
            await answer(host, remember)
        except SandkitError as exc:
            self.say(f"\r\nsandkit: the answer did not reach the sandbox: {exc}\r\n")

    def say(self, text: str) -> None:
        self.out.write(text.encode())
        self.out.flush()

    def divert(self, data: bytes) -> bytes:
        """Keys typed while a question is open answer it; the rest go to the agent."""
        if self.current is None or not data:
            return data
        choice = KEYS.get(data[:1].lower())
        if choice is None or time.monotonic() - self.asked_at < TYPING_GUARD:
            self.say("\a")  # a key typed for the agent as the question appeared: not an answer
            return b""
        method, remember = choice
        event, self.current = self.current, None
        host = event["host"] if remember else host_with_port(event["host"], event["port"])
        spawn(self.answer(method, host, remember), "approval-answer")
        verdict = "allowed" if method == "approve" else "denied"
        scope = " for this sandbox" if remember else ""
        self.say(f"\r\n{event['host']}: {verdict}{scope}\r\n")
        if self.waiting:
            self.current = self.waiting.popleft()
            self.ask(self.current)
        return b""
