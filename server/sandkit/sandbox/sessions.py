"""Sessions: programs in the guest that belong to the supervisor, not to a client.

The agent (and every ``exec -d``) runs as a session: the supervisor reads its output all
the time, so the program never waits for a reader, keeps the last ``SCROLLBACK`` bytes for
whoever attaches next, and hands every new chunk to the clients attached at that moment.
A client that falls too far behind is detached (it can attach again and gets the screen
back from the scrollback), so one stuck terminal cannot stall the agent or grow the
supervisor's memory. This module is the pure part: no sockets, no guest channel."""

from __future__ import annotations

import asyncio
import collections
import itertools
import re
import time
from dataclasses import dataclass, field

from sandkit.rpc import exit_status

SCROLLBACK = 256 << 10  # bytes of recent output kept per session (like tmux's history)
CLIENT_BACKLOG = 4 << 20  # bytes an attached client may fall behind before it is detached
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")


class Scrollback:
    """The most recent output, bounded in bytes. Chunks keep their stream so that
    ``logs`` can tell stdout from stderr for sessions without a terminal."""

    def __init__(self, limit: int = SCROLLBACK) -> None:
        self.limit = limit
        self.size = 0
        self.total = 0  # every byte ever written: where a follower is in the stream
        self._chunks: collections.deque[tuple[str, bytes]] = collections.deque()

    def write(self, stream: str, data: bytes) -> None:
        if len(data) > self.limit:
            data = data[-self.limit :]
        self._chunks.append((stream, data))
        self.size += len(data)
        self.total += len(data)
        while self.size > self.limit:
            old_stream, old = self._chunks.popleft()
            over = self.size - self.limit
            if over < len(old):  # keep the chunk's tail
                self._chunks.appendleft((old_stream, old[over:]))
                self.size -= over
            else:
                self.size -= len(old)

    def chunks(self) -> list[tuple[str, bytes]]:
        return list(self._chunks)

    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self._chunks)


@dataclass
class Attachment:
    """One attached client: what it has not taken yet, bounded by CLIENT_BACKLOG."""

    rows: int = 24
    cols: int = 80
    queue: asyncio.Queue[tuple[str, bytes] | None] = field(default_factory=asyncio.Queue)
    backlog: int = 0
    dropped: bool = False  # fell behind: detached; the client reattaches to catch up

    def offer(self, stream: str, data: bytes) -> bool:
        if self.dropped:
            return False
        if self.backlog + len(data) > CLIENT_BACKLOG:
            self.dropped = True
            self.queue.put_nowait(None)
            return False
        self.backlog += len(data)
        self.queue.put_nowait((stream, data))
        return True

    def taken(self, data: bytes) -> None:
        self.backlog -= len(data)

    def end(self) -> None:
        self.queue.put_nowait(None)


@dataclass
class Session:
    name: str
    argv: list[str]
    user: str
    pty: bool
    started: float = field(default_factory=time.time)
    code: int | None = None
    signal: int | None = None
    ended: float | None = None
    scrollback: Scrollback = field(default_factory=Scrollback)
    attached: list[Attachment] = field(default_factory=list)  # terminals: they set the size
    followers: list[Attachment] = field(default_factory=list)  # `logs -f`: output only

    @property
    def running(self) -> bool:
        return self.ended is None

    @property
    def exit_status(self) -> int | None:
        return None if self.running else exit_status(self.code, self.signal)

    def output(self, stream: str, data: bytes) -> None:
        self.scrollback.write(stream, data)
        self.attached = [a for a in self.attached if a.offer(stream, data)]
        self.followers = [a for a in self.followers if a.offer(stream, data)]

    def exited(self, code: int | None, signal: int | None) -> None:
        self.code, self.signal, self.ended = code, signal, time.time()
        for attachment in [*self.attached, *self.followers]:
            attachment.end()
        self.attached.clear()
        self.followers.clear()

    def attach(self, rows: int, cols: int, interactive: bool = True) -> Attachment:
        """A new client; an interactive one's terminal sets the size (the most recent
        client wins, as in tmux's ``window-size latest``), a follower's does not."""
        attachment = Attachment(rows=rows, cols=cols)
        (self.attached if interactive else self.followers).append(attachment)
        return attachment

    def detach(self, attachment: Attachment) -> tuple[int, int] | None:
        """Forget a client; the size the terminal should now have, if another client is
        still attached (the most recently attached one)."""
        for group in (self.attached, self.followers):
            if attachment in group:
                group.remove(attachment)
                attachment.end()
        if self.attached:
            latest = self.attached[-1]
            return latest.rows, latest.cols
        return None

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "argv": self.argv,
            "user": self.user,
            "pty": self.pty,
            "started": self.started,
            "running": self.running,
            "exit_status": self.exit_status,
            "ended": self.ended,
            "attached": len(self.attached),
        }


class SessionError(ValueError):
    """A session name that is taken, malformed or unknown."""


class SessionTable:
    """The sandbox's sessions by name. Ended sessions stay listed (with their exit status)
    until their name is reused or there are more than KEEP_ENDED of them."""

    KEEP_ENDED = 32

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._numbers = itertools.count(1)

    def new_name(self) -> str:
        while (name := str(next(self._numbers))) in self._sessions:
            pass
        return name

    def add(self, session: Session) -> Session:
        if not NAME.fullmatch(session.name):
            raise SessionError(
                f"session name '{session.name}': use 1-40 of a-z, 0-9, '.', '_', '-', "
                "starting with a letter or digit"
            )
        old = self._sessions.get(session.name)
        if old is not None and old.running:
            raise SessionError(f"a session named '{session.name}' is already running")
        self._sessions[session.name] = session
        ended = sorted(
            (s for s in self._sessions.values() if not s.running), key=lambda s: s.ended or 0
        )
        for stale in ended[: max(0, len(ended) - self.KEEP_ENDED)]:
            del self._sessions[stale.name]
        return session

    def get(self, name: str) -> Session:
        try:
            return self._sessions[name]
        except KeyError:
            known = ", ".join(self._sessions) or "none"
            raise SessionError(f"no session '{name}' (sessions: {known})") from None

    def forget(self, name: str) -> None:
        self._sessions.pop(name, None)

    def find(self, name: str) -> Session | None:
        return self._sessions.get(name)

    def running(self) -> list[Session]:
        return [s for s in self._sessions.values() if s.running]

    def all(self) -> list[Session]:
        return sorted(self._sessions.values(), key=lambda s: s.started)
