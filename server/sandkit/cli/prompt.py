"""Network approvals (and notices of held sync changes) in the terminal attached to the agent.

While ``sandkit run`` (or ``attach``) is attached to a terminal it watches its sandbox's
held requests and asks about each one, one at a time. The question never reads plain keys:
it is answered with sandkit's escape key (Ctrl-\\ then o, a or n; cli/keys.py), so whatever
else the user types goes on to the agent. A question whose request ends some other way
(answered with ``sandkit policy approve`` or in the editor, timed out, or given up by the
program that asked) is withdrawn at once, with a line saying so."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, Protocol

from sandkit.cli.keys import Command
from sandkit.errors import SandkitError
from sandkit.net.approvals import host_with_port
from sandkit.tasks import spawn

ANSWERS = {  # command -> (supervisor method, remember for the sandbox)
    Command.ALLOW_ONCE: ("approve", False),
    Command.ALLOW_ALWAYS: ("approve", True),
    Command.DENY: ("deny", False),
}


class Approvals(Protocol):
    """What the prompt needs of ``sandbox.client.SupervisorClient`` (its own connection)."""

    async def watch(self) -> None: ...
    def events(self) -> AsyncIterator[dict[str, Any]]: ...
    async def approve(self, host: str, remember: bool = False) -> Any: ...
    async def deny(self, host: str, remember: bool = False) -> Any: ...


class ApprovalPrompt:
    def __init__(
        self, client: Approvals, out: BinaryIO, timeout: float, name: str = "NAME"
    ) -> None:
        self.client, self.out, self.timeout, self.name = client, out, timeout, name
        self.waiting: collections.deque[dict[str, Any]] = collections.deque()
        self.current: dict[str, Any] | None = None

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
                self.withdraw(event)
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
        self.say(
            f"\r\n\x1b[1msandkit:\x1b[0m the agent wants to reach "
            f"\x1b[1m{event['host']}:{event['port']}\x1b[0m, which no rule allows.\r\n"
            "  Ctrl-\\ o allow once   Ctrl-\\ a allow for this sandbox   Ctrl-\\ n deny\r\n"
            f"  (denied after {self.timeout:g} s without an answer; "
            "everything else you type goes to the agent)\r\n"
        )

    def withdraw(self, event: dict[str, Any]) -> None:
        """The question's request ended without an answer from here: say how, and drop it."""
        action = event.get("action")
        if action == "timeout":
            how = "denied (no answer in time)"
        elif action == "abandoned":  # the program that asked gave up (e.g. curl -m 3)
            how = "no longer asked (the program that wanted it gave up)"
        else:
            how = f"{'allowed' if action == 'allow' else 'denied'} (answered elsewhere)"
        self.say(f"\r\n{event['host']}: {how}; question withdrawn\r\n")
        self.current = None

    async def answer(self, method: str, host: str, remember: bool) -> None:
        try:
            answer = self.client.approve if method == "approve" else self.client.deny
            await answer(host, remember)
        except SandkitError as exc:
            self.say(f"\r\nsandkit: the answer did not reach the sandbox: {exc}\r\n")

    def say(self, text: str) -> None:
        self.out.write(text.encode())
        self.out.flush()

    def command(self, command: Command) -> None:
        """Ctrl-\\ o / a / n: the answer to the question shown, if one is."""
        choice = ANSWERS.get(command)
        if choice is None:
            return
        if self.current is None:
            self.say("\a")  # nothing is asked: the keys are sandkit's all the same
            return
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
