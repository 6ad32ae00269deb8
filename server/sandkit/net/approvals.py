"""Requests the policy leaves open, held until a person answers.

The proxy calls ``ApprovalBroker.ask`` for a host no rule covers; the broker publishes the
question to its watchers (an attached ``sandkit run``, the language server) and waits for
``answer`` (from a watcher, or ``sandkit policy approve|deny`` in another terminal). Nobody
watching means nobody can answer: the request is denied at once instead of hanging. The
proxy's own time-out turns a question nobody answers into a deny.

A question, and so an approval, is always about one exact host (``exact_host``): the host
comes from the agent's request, and a request for ``**`` answered with "allow for this
sandbox" must not become a rule that allows everything. An approval lets a host through
the policy only; it never lets it reach an internal address (net/proxy/decide.py: only a
kit rule or a pin the user wrote can)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sandkit.kits.hostrules import RuleKind, parse_rule
from sandkit.net.actions import Action


@dataclass(frozen=True)
class Approval:
    action: Action
    remember: bool = False  # for the rest of this sandbox's life


# The message a request's ask is cancelled with when its client went away (net/proxy/
# decide.py): the question is then withdrawn as "abandoned", not as a time-out.
ABANDONED = "abandoned"


@dataclass
class Held:
    id: int
    host: str
    port: int
    since: float
    future: asyncio.Future[Approval | None] = field(repr=False)
    waiting: int = 0  # requests waiting on this one question

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "port": self.port, "since": self.since}


class ApprovalBroker:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.held: dict[int, Held] = {}
        self._watchers: set[asyncio.Queue[dict[str, Any]]] = set()

    @contextlib.contextmanager
    def watch(self) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        """Events: {"event": "approval", id, host, port, since} when a request is held,
        {"event": "approval-done", id, host, action} when it is answered or dropped. A new
        watcher first gets the questions already open."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for held in self.held.values():
            queue.put_nowait({"event": "approval", **held.describe()})
        self._watchers.add(queue)
        try:
            yield queue
        finally:
            self._watchers.discard(queue)

    def _publish(self, event: dict[str, Any]) -> None:
        for queue in self._watchers:
            queue.put_nowait(event)

    async def ask(self, host: str, port: int) -> Approval | None:
        if not self._watchers:
            return None
        try:
            exact_host(host)
        except ValueError:
            return None  # a wildcard or malformed name: nothing a person could approve
        held = next((h for h in self.held.values() if (h.host, h.port) == (host, port)), None)
        if held is None:  # one question per host, however many requests wait on it
            held = Held(
                next(self._ids), host, port, time.time(), asyncio.get_running_loop().create_future()
            )
            self.held[held.id] = held
            self._publish({"event": "approval", **held.describe()})
        held.waiting += 1
        why = "timeout"
        try:
            return await asyncio.shield(held.future)
        except asyncio.CancelledError as exc:  # the proxy's time-out, or the client left
            if exc.args == (ABANDONED,):
                why = ABANDONED
            raise
        finally:
            held.waiting -= 1
            if held.waiting == 0 and not held.future.done():  # the last one stops waiting
                held.future.set_result(None)
                self._publish(
                    {"event": "approval-done", "id": held.id, "host": host, "action": why}
                )
            if held.future.done():
                self.held.pop(held.id, None)

    def answer(
        self, action: Action, *, host: str | None = None, id: int | None = None
    ) -> list[Held]:
        """Answer the held requests to ``host`` (any port, or ``host:port``) or the one
        with ``id``; returns those answered."""
        name, port = _host_port(host) if host is not None else (None, "")
        answered = []
        for held in list(self.held.values()):
            if id is not None and held.id != id:
                continue
            if host is not None and (
                held.host.lower() != (name or "").lower() or (port and str(held.port) != port)
            ):
                continue
            if not held.future.done():
                held.future.set_result(Approval(action))
            self.held.pop(held.id, None)
            answered.append(held)
            self._publish(
                {
                    "event": "approval-done",
                    "id": held.id,
                    "host": held.host,
                    "action": str(action),
                }
            )
        return answered


def exact_host(text: str, *, port: bool = False) -> str:
    """The one host an approval may name: a host name or a single IP address, without a
    wildcard, in lower case; with ``port``, optionally one port too ("host:443"). Raises
    ValueError, worded for the person answering."""
    host = text.strip().lower().rstrip(".")
    if not host:
        raise ValueError("an approval needs a host name, e.g. api.example.com")
    rule = parse_rule(host)  # ValueError: not a host, an address or a rule at all
    if rule.kind in (RuleKind.ANY, RuleKind.ONE_LABEL, RuleKind.ANY_DEPTH):
        raise ValueError(
            f"'{text}' is a wildcard: an approval names one host; "
            "a rule for many hosts belongs in a kit, written by a person"
        )
    name = rule.host
    if rule.kind is RuleKind.NETWORK:
        assert rule.network is not None
        if rule.network.num_addresses != 1:
            raise ValueError(f"'{text}' is a range of addresses: an approval names one host")
        address = rule.network.network_address
        name = f"[{address}]" if address.version == 6 and rule.ports else str(address)
    if rule.ports is None:
        return name
    if not port:
        raise ValueError(f"'{text}' has a port: name the host alone, e.g. api.example.com")
    if rule.ports[0] != rule.ports[1]:
        raise ValueError(f"'{text}' names a range of ports: an approval names at most one")
    return f"{name}:{rule.ports[0]}"


def _host_port(text: str) -> tuple[str, str]:
    """ "host", "host:443", "[::1]:443" or a bare IPv6 address "::1" (no port)."""
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        return inside, rest.removeprefix(":")
    if text.count(":") == 1:
        name, _, port = text.partition(":")
        return name, port
    return text, ""


def host_with_port(host: str, port: int) -> str:
    """The form answer() takes for one host and port (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
