"""The proxy's server: it listens, serves each client connection's requests in turn, and
owns its settings' decision log and CA from start to ``aclose``."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from types import TracebackType

from sandkit.kits.model import Phase
from sandkit.logs import logger
from sandkit.net import answers
from sandkit.net.actions import Action
from sandkit.net.httpio import BadMessage, MessageReader
from sandkit.net.proxy import forward, tunnel
from sandkit.net.proxy.settings import COPY_SIZE, IDLE_TIMEOUT, ProxySettings
from sandkit.net.proxy.upstream import Upstream

log = logger(__name__)


class EgressProxy:
    """Serves with ``s`` until closed. Its owner changes what it does only through
    ``reconfigure``, ``set_phase`` and ``approve``, and ends it with ``aclose`` (or
    ``async with``), which closes the log and the CA exactly once."""

    def __init__(self, settings: ProxySettings) -> None:
        self.s = settings
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        # Connections waiting for their next request, and since when: one timer reaps the
        # idle ones, instead of a timer per request.
        self._waiting: dict[asyncio.StreamWriter, float] = {}
        self._reaper: asyncio.TimerHandle | None = None
        self._released = False

    # -- lifecycle ----------------------------------------------------------------------
    async def start(
        self, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
    ) -> tuple[str, int]:
        """Listen on host:port, or on an already bound ``sock`` (its port was promised
        to someone, e.g. a VM's forward, before the proxy was ready)."""
        if sock is not None:
            self._server = await asyncio.start_server(self._serve, sock=sock, limit=COPY_SIZE)
        else:
            self._server = await asyncio.start_server(
                self._serve, host, port, limit=COPY_SIZE, reuse_address=True
            )
        address = self._server.sockets[0].getsockname()
        self._reap()
        if isinstance(address, str):  # a Unix socket (net/access.py bind_private)
            return address, 0
        return str(address[0]), int(address[1])

    def reconfigure(self, settings: ProxySettings) -> None:
        """Serve with ``settings`` from the next decision on, and close what only the
        old settings held (a log or CA both share stays open)."""
        old, self.s = self.s, settings
        old.release(keep=settings)

    def set_phase(self, phase: Phase) -> None:
        """v3 kits' install-phase rules hold only while install commands run."""
        self.s.phase = phase

    def approve(self, host: str, action: Action) -> None:
        """A person's remembered answer for ``host`` (one host, never a wildcard)."""
        self.s.policy = self.s.policy.with_approval(host, action)

    async def aclose(self) -> None:
        """Stop serving (open connections are cut), then close the log and the CA."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None
        if not self._released:
            self._released = True
            self.s.release()

    async def __aenter__(self) -> EgressProxy:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _reap(self) -> None:
        deadline = time.monotonic() - IDLE_TIMEOUT
        for writer, since in list(self._waiting.items()):
            if since < deadline:
                self._waiting.pop(writer, None)
                writer.transport.abort()
        self._reaper = asyncio.get_running_loop().call_later(IDLE_TIMEOUT / 4, self._reap)

    # -- one client connection ------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            await self.requests(reader, writer, MessageReader(reader, "request"), origin=None)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        except BadMessage as exc:
            await answers.error(writer, exc.status, exc.reason)
        except Exception:  # a bug must cost one connection, never the proxy
            log.exception("proxy connection failed")
        finally:
            self._clients.discard(writer)
            self._waiting.pop(writer, None)
            writer.close()

    async def requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        messages: MessageReader,
        origin: tuple[str, int] | None,
    ) -> None:
        """Serve requests until the client or a response ends the connection.
        ``origin`` is the CONNECT target when this is a TLS-terminated tunnel."""
        upstream: Upstream | None = None
        try:
            while True:
                self._waiting[writer] = time.monotonic()  # idle until a head arrives
                head = await messages.head()
                self._waiting.pop(writer, None)
                if head is None:
                    return
                access = self.s.access
                if origin is None and access is not None and not access.admits(head):
                    await access.refuse(writer)
                    return
                if head.method == "CONNECT" and origin is None:
                    await tunnel.connect(self, head, reader, writer, messages)
                    return
                keep, upstream = await forward.forward(
                    self, head, writer, messages, origin, upstream
                )
                if not keep:
                    return
        finally:
            if upstream is not None:
                upstream.close()
