"""The egress proxy: an HTTP/1.1 forward proxy with CONNECT, run on asyncio streams.

Per client connection: read a request head; decide with the policy; then
- plain HTTP: forward to the origin (keep-alive both sides, bodies streamed);
- CONNECT to a host with no credential: tunnel bytes both ways with back-pressure;
- CONNECT to a host that carries a credential (or has method/path rules): terminate TLS
  with a leaf from the sandbox CA, inject the credential, forward over verified TLS.
Names are resolved before connecting and internal addresses refused unless a rule names
the host exactly (SSRF guard); the connection goes to the checked address (no rebinding).
In a terminated tunnel every request must name the tunnel's host, and every response is
scrubbed of real secrets before it goes back to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httptools

from sandkit.kits.model import Phase
from sandkit.net.access import TokenAccess
from sandkit.net.actions import Action
from sandkit.net.approvals import Approval
from sandkit.net.decisions import Decision, DecisionLog
from sandkit.net.guard import IPAddress, Resolver, blocked_body, is_internal, mismatch_body
from sandkit.net.httpio import BadMessage, Head, MessageReader, encode_head, end_to_end, send_body
from sandkit.net.inject import Injector
from sandkit.net.policy import Policy, Reason, Verdict
from sandkit.net.scrub import BodyScrubber, Decoder, Scrubber, UnsupportedEncoding
from sandkit.net.target import BadTarget, split_absolute, split_authority
from sandkit.net.tls import CertificateAuthority

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0
COPY_SIZE = 256 * 1024
# Request headers that would keep the response scrubber from seeing a whole, plain body.
_UNSCRUBBABLE_REQUEST = frozenset({"accept-encoding", "range", "if-range"})


Ask = Callable[[str, int], Awaitable[Approval | None]]


@dataclass
class ProxySettings:
    policy: Policy
    ca: CertificateAuthority
    injector: Injector = field(default_factory=Injector)
    log: DecisionLog = field(default_factory=DecisionLog)
    resolver: Resolver = field(default_factory=Resolver)
    upstream_tls: ssl.SSLContext = field(default_factory=ssl.create_default_context)
    sandbox: str = "-"
    phase: Phase = Phase.RUNTIME
    ask: Ask | None = None
    ask_timeout: float = 60.0
    access: TokenAccess | None = None  # every request to the proxy must carry its token


class Blocked(Exception):
    def __init__(self, code: str, body: str, verdict: Verdict | None = None) -> None:
        super().__init__(code)
        self.code, self.body, self.verdict = code, body, verdict


class EgressProxy:
    def __init__(self, settings: ProxySettings) -> None:
        self.s = settings
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        # Connections waiting for their next request, and since when: one timer reaps the
        # idle ones, instead of a timer per request.
        self._waiting: dict[asyncio.StreamWriter, float] = {}
        self._reaper: asyncio.TimerHandle | None = None

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

    def _reap(self) -> None:
        deadline = time.monotonic() - IDLE_TIMEOUT
        for writer, since in list(self._waiting.items()):
            if since < deadline:
                self._waiting.pop(writer, None)
                writer.transport.abort()
        self._reaper = asyncio.get_running_loop().call_later(IDLE_TIMEOUT / 4, self._reap)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    # -- one client connection ------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            await self._requests(reader, writer, MessageReader(reader, "request"), origin=None)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        except BadMessage as exc:
            await self._error(writer, exc.status, exc.reason)
        except Exception:  # a bug must cost one connection, never the proxy
            log.exception("proxy connection failed")
        finally:
            self._clients.discard(writer)
            self._waiting.pop(writer, None)
            writer.close()

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        messages: MessageReader,
        origin: tuple[str, int] | None,
    ) -> None:
        """Serve requests until the client or a response ends the connection.
        ``origin`` is the CONNECT target when this is a TLS-terminated tunnel."""
        upstream: _Upstream | None = None
        try:
            while True:
                self._waiting[writer] = time.monotonic()  # idle until a head arrives
                head = await messages.head()
                self._waiting.pop(writer, None)
                if head is None:
                    return
                if origin is None and self.s.access and not self.s.access.admits(head):
                    await self.s.access.refuse(writer)
                    return
                if head.method == "CONNECT" and origin is None:
                    await self._connect(head, reader, writer, messages)
                    return
                keep, upstream = await self._forward(head, writer, messages, origin, upstream)
                if not keep:
                    return
        finally:
            if upstream is not None:
                upstream.close()

    # -- decisions ----------------------------------------------------------------------
    async def _verdict(
        self,
        host: str,
        port: int,
        method: str | None = None,
        path: str | None = None,
        address: IPAddress | None = None,
    ) -> Verdict:
        policy = self.s.policy
        verdict = policy.decide(
            host,
            port,
            phase=self.s.phase,
            method=method,
            path=path,
            can_ask=self.s.ask is not None,
            address=address,
        )
        if verdict.action is not Action.ASK or self.s.ask is None:
            return verdict
        try:
            answer = await asyncio.wait_for(self.s.ask(host, port), self.s.ask_timeout)
        except TimeoutError:
            answer = None
        if answer is None:
            return Verdict(Action.DENY, Reason.DEFAULT_DENY)
        if answer.remember:
            self.s.policy = policy.with_approval(host, answer.action)
        reason = Reason.APPROVED if answer.action is Action.ALLOW else Reason.REFUSED
        return Verdict(answer.action, reason)

    async def _decide(
        self,
        host: str,
        port: int,
        method: str | None = None,
        path: str | None = None,
        address: IPAddress | None = None,
    ) -> tuple[Verdict, IPAddress | None]:
        """The verdict, and the address it was given (None: not resolved yet). When a
        rule names addresses, the name is resolved first: ``2130706433`` or a name that
        points at a denied address must meet the rule for that address."""
        if address is None and self.s.policy.needs_address:
            first = self.s.policy.decide(
                host, port, phase=self.s.phase, method=method, path=path, can_ask=False
            )
            if first.reason is not Reason.DENY_RULE:  # a name denied outright needs no DNS
                address = await self._resolve(host, port, first)
        return await self._verdict(host, port, method, path, address), address

    def _blocked(self, host: str, port: int, verdict: Verdict) -> Blocked:
        return Blocked(
            str(verdict.reason), blocked_body(host, port, verdict, self.s.policy.default), verdict
        )

    async def _resolve(self, host: str, port: int, verdict: Verdict | None) -> IPAddress:
        try:
            addresses = await asyncio.wait_for(self.s.resolver.resolve(host, port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, UnicodeError):
            raise Blocked("dns", f"sandkit proxy: cannot resolve {host}\n", verdict) from None
        if not addresses:
            raise Blocked("dns", f"sandkit proxy: {host} has no address\n", verdict)
        return addresses[0]

    async def _address(
        self, host: str, port: int, verdict: Verdict, address: IPAddress | None = None
    ) -> IPAddress:
        """The address to connect to (resolved unless given), past the SSRF guard."""
        if address is None:
            address = await self._resolve(host, port, verdict)
        if is_internal(address) and not (verdict.explicit or self.s.resolver.pinned(host)):
            detail = f"{host} resolves to the internal address {address}"
            body = blocked_body(host, port, verdict, self.s.policy.default, detail)
            raise Blocked("private-address", body, verdict)
        return address

    def _record(self, decision: Decision, verdict: Verdict | None) -> None:
        if verdict is not None and verdict.rule is not None:
            decision.rule = verdict.rule.pattern
            decision.origin = str(verdict.rule.origin)
        self.s.log.record(decision)

    # -- CONNECT --------------------------------------------------------------------------
    async def _connect(
        self,
        head: Head,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        messages: MessageReader,
    ) -> None:
        started = time.monotonic()
        host, port = _authority(head.target, 443)
        decision = Decision(self.s.sandbox, "CONNECT", "tunnel", host, port, "blocked", "")
        verdict: Verdict | None = None
        try:
            verdict, resolved = await self._decide(host, port)
            if verdict.action is not Action.ALLOW:
                raise self._blocked(host, port, verdict)
            decision.reason = str(verdict.reason)
            if self.s.injector.intercepts(host) or verdict.inspect:
                if messages.leftover:
                    raise BadMessage(400, "data sent before the tunnel was established")
                decision.action, decision.scheme = "allowed", "https"
                self._record(decision, verdict)
                await self._intercept(host, port, reader, writer)
                return
            address = await self._address(host, port, verdict, resolved)
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, limit=COPY_SIZE), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                decision.status = 502
                await self._error(writer, 502, f"cannot connect to {host}:{port}: {exc}")
                return
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            decision.action, decision.status = "allowed", 200
            if messages.leftover:
                up_writer.write(messages.leftover)
            decision.bytes_up, decision.bytes_down = await _splice(
                reader, writer, up_reader, up_writer
            )
            decision.bytes_up += len(messages.leftover)
        except Blocked as blocked:
            decision.reason, decision.status = blocked.code, 403
            await self._forbidden(writer, blocked)
        finally:
            if decision.scheme == "tunnel":
                decision.latency_ms = round((time.monotonic() - started) * 1000, 2)
                self._record(decision, verdict)

    async def _intercept(
        self, host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await writer.start_tls(self.s.ca.server_context(host))
        await self._requests(reader, writer, MessageReader(reader, "request"), origin=(host, port))

    # -- one forwarded request --------------------------------------------------------
    async def _forward(
        self,
        head: Head,
        writer: asyncio.StreamWriter,
        messages: MessageReader,
        origin: tuple[str, int] | None,
        upstream: _Upstream | None,
    ) -> tuple[bool, _Upstream | None]:
        started = time.monotonic()
        mismatch: Blocked | None = None
        if origin is not None:
            host, port, secure = origin[0], origin[1], True
            headers = head.headers
            try:
                path = _tunnel_target(head, host, port)
            except Blocked as blocked:
                mismatch, path = blocked, head.target
        else:
            try:
                host, port, path = _absolute(head.target)
            except ValueError as exc:
                raise BadMessage(400, str(exc)) from None
            secure = False
            # RFC 9112 §3.2.2: a proxy replaces Host with the URL's authority, so the
            # origin serves the host the policy judged, not one the client names.
            headers = [(k, v) for k, v in head.headers if k.lower() != "host"]
        decision = Decision(
            self.s.sandbox,
            head.method,
            "https" if secure else "http",
            host,
            port,
            "blocked",
            "",
            path=path.split("?", 1)[0],
        )
        verdict: Verdict | None = None
        try:
            if mismatch is not None:
                raise mismatch
            reuse = upstream is not None and upstream.key == (host, port) and not upstream.closed
            known = upstream.address if upstream is not None and reuse else None
            verdict, resolved = await self._decide(host, port, head.method, path, known)
            if verdict.action is not Action.ALLOW:
                raise self._blocked(host, port, verdict)
            decision.reason = str(verdict.reason)
            injection = self.s.injector.apply(host, path, headers, secure=secure)
            decision.credentials, decision.warnings = injection.injected, injection.warnings
            if upstream is None or not reuse:
                if upstream is not None:
                    upstream.close()
                upstream = None
                address = await self._address(host, port, verdict, resolved)
                upstream = await _Upstream.open(
                    host, port, address, self.s.upstream_tls if secure else None
                )
            # Responses from a terminated tunnel go back scrubbed of real secrets.
            scrubber = self.s.injector.scrubber if secure and self.s.injector.scrubber else None
            try:
                keep = await self._exchange(
                    head,
                    injection.headers,
                    path,
                    host,
                    port,
                    writer,
                    messages,
                    upstream,
                    decision,
                    scrubber,
                )
            except BaseException:
                upstream.close()  # the caller never sees this connection: close it here
                raise
            decision.action = "allowed"
            if not keep:
                upstream.close()
            return keep, upstream
        except Blocked as blocked:
            decision.reason, decision.status = blocked.code, 403
            await self._forbidden(writer, blocked)
            return False, upstream
        except UnsupportedEncoding as exc:
            decision.status = 502
            decision.warnings.append(str(exc))
            await self._error(writer, 502, str(exc))
            return False, upstream
        except (OSError, TimeoutError) as exc:
            decision.status = 502
            await self._error(writer, 502, f"cannot reach {host}:{port}: {exc}")
            return False, upstream
        finally:
            decision.latency_ms = round((time.monotonic() - started) * 1000, 2)
            self._record(decision, verdict)

    async def _exchange(
        self,
        head: Head,
        headers: list[tuple[str, str]],
        path: str,
        host: str,
        port: int,
        writer: asyncio.StreamWriter,
        messages: MessageReader,
        upstream: _Upstream,
        decision: Decision,
        scrubber: Scrubber | None = None,
    ) -> bool:
        upgrade = head.upgrade and head.method != "CONNECT"
        keep_names = frozenset({"upgrade", "connection"}) if upgrade else frozenset()
        out = end_to_end(headers, keep_names)
        if scrubber is not None:
            # The scrubber must see whole, plain bodies: a compressed body hides a
            # reflected secret, and byte ranges would let it out a few bytes at a time.
            out = [(k, v) for k, v in out if k.lower() not in _UNSCRUBBABLE_REQUEST]
            out.append(("Accept-Encoding", "identity"))
        if not any(k.lower() == "host" for k, _ in out):
            name = f"[{host}]" if ":" in host else host
            out.insert(0, ("Host", name if port in (80, 443) else f"{name}:{port}"))
        framing = head.framing
        if framing == "chunked":
            out.append(("Transfer-Encoding", "chunked"))
        upstream.writer.write(encode_head(f"{head.method} {path} HTTP/1.1", out))
        if framing != "none":
            decision.bytes_up = await send_body(
                messages.body(), upstream.writer, framing == "chunked"
            )
        else:
            async for _ in messages.body():
                pass  # consume the end of message
            await upstream.writer.drain()
        while True:
            try:
                # No time limit: a model's first byte can take minutes; the client decides.
                response = await upstream.messages.head()
            except BadMessage as exc:
                raise ConnectionError(f"the origin sent bad HTTP ({exc.reason})") from None
            if response is None:
                raise ConnectionError("upstream closed without a response")
            if 100 <= response.status < 200 and response.status != 101:
                writer.write(encode_head(f"HTTP/1.1 {response.status} Continue", []))
                async for _ in upstream.messages.body():
                    pass
                continue
            break
        decision.status = response.status
        no_body = head.method == "HEAD" or response.status in (204, 304) or response.status < 200
        client_keep = head.keep_alive and not upgrade
        back = end_to_end(response.headers, keep_names if response.status == 101 else frozenset())
        rframing = response.framing
        chunk_back = not no_body and rframing != "length"
        phrase = response.reason or _phrase(response.status)
        body: tuple[Decoder, BodyScrubber] | None = None
        if scrubber is not None:
            back, phrase = self._scrub_head(scrubber, back, phrase, host, decision)
            if not no_body and response.status != 101:
                encoding = ", ".join(v for k, v in back if k.lower() == "content-encoding")
                decoder = Decoder(encoding)  # refuses what it cannot read, before any byte
                dropped = {"content-length", "content-encoding"} if decoder.active else set()
                # Scrubbing may change the length: the body goes back chunked.
                back = [(k, v) for k, v in back if k.lower() not in dropped | {"content-length"}]
                body, chunk_back = (decoder, scrubber.stream()), True
        if chunk_back:
            back.append(("Transfer-Encoding", "chunked"))
        if not client_keep:
            back.append(("Connection", "close"))
        response_head = encode_head(f"HTTP/1.1 {response.status} {phrase}", back)
        if response.status == 101:
            writer.write(response_head)
            await writer.drain()
            if upstream.messages.leftover:
                writer.write(upstream.messages.leftover)
            up, down = await _splice(messages.stream, writer, upstream.reader, upstream.writer)
            decision.bytes_up += up + len(messages.leftover)
            decision.bytes_down += down
            return False
        if no_body:
            upstream.messages.skip_body()
            writer.write(response_head)
            await writer.drain()
        elif body is not None:
            decoder, scrub = body
            try:
                decision.bytes_down = await send_body(
                    _scrubbed(upstream.messages.body(), decoder, scrub, writer, decision),
                    writer,
                    True,
                    response_head,
                )
            finally:
                decision.warnings.extend(
                    f"the response from {host} carried the real secret of '{service}' in "
                    "its body; replaced by its placeholder"
                    for service in sorted(scrub.found)
                )
        else:
            decision.bytes_down = await send_body(
                upstream.messages.body(), writer, chunk_back, response_head
            )
        upstream_keep = response.keep_alive and rframing != "none"
        if not upstream_keep:
            upstream.closed = True
        return client_keep

    @staticmethod
    def _scrub_head(
        scrubber: Scrubber,
        headers: list[tuple[str, str]],
        phrase: str,
        host: str,
        decision: Decision,
    ) -> tuple[list[tuple[str, str]], str]:
        headers, hits = scrubber.headers(headers)
        phrase, found = scrubber.text(phrase)
        hits += [("status line", service) for service in sorted(found)]
        decision.warnings.extend(
            f"the response from {host} carried the real secret of '{service}' in "
            f"{'the' if where == 'status line' else 'header'} {where}; replaced by its "
            "placeholder"
            for where, service in hits
        )
        return headers, phrase

    # -- answers ------------------------------------------------------------------------
    async def _forbidden(self, writer: asyncio.StreamWriter, blocked: Blocked) -> None:
        body = blocked.body.encode()
        writer.write(
            encode_head(
                "HTTP/1.1 403 Forbidden",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("X-Sandkit-Blocked", blocked.code),
                    ("Connection", "close"),
                ],
            )
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def _error(self, writer: asyncio.StreamWriter, status: int, reason: str) -> None:
        if writer.is_closing():
            return
        body = f"sandkit proxy: {reason}\n".encode()
        writer.write(
            encode_head(
                f"HTTP/1.1 {status} {_phrase(status)}",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ],
            )
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()


class _Upstream:
    """One kept-alive connection to an origin, owned by one client connection."""

    def __init__(
        self,
        key: tuple[str, int],
        address: IPAddress,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.key, self.address, self.reader, self.writer = key, address, reader, writer
        self.messages = MessageReader(reader, "response")
        self.closed = False

    @classmethod
    async def open(
        cls, host: str, port: int, address: IPAddress, tls: ssl.SSLContext | None
    ) -> _Upstream:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                str(address), port, ssl=tls, limit=COPY_SIZE, server_hostname=host if tls else None
            ),
            CONNECT_TIMEOUT,
        )
        return cls((host, port), address, reader, writer)

    def close(self) -> None:
        self.closed = True
        self.writer.transport.abort()


async def _scrubbed(
    source: AsyncIterator[bytes],
    decoder: Decoder,
    scrub: BodyScrubber,
    writer: asyncio.StreamWriter,
    decision: Decision,
) -> AsyncIterator[bytes]:
    """A response body decoded and scrubbed as it streams."""
    try:
        async for piece in source:
            for plain in decoder.feed(piece):
                yield scrub.feed(plain)
        yield scrub.feed(decoder.flush()) + scrub.flush()
    except UnsupportedEncoding as exc:
        decision.warnings.append(str(exc))
        writer.transport.abort()  # part of the answer may be out: no honest way to end it
        raise ConnectionError(str(exc)) from None


def _tunnel_target(head: Head, host: str, port: int) -> str:
    """The target to send upstream for a request inside the terminated tunnel to
    ``host:port`` (an absolute-form URL reduced to its path). A request that names another
    host, in its URL or its Host header, is Blocked: the tunnel's credentials are for
    the tunnel's host alone."""
    tunnel = host.rstrip(".")
    shown = f"[{tunnel}]:{port}" if ":" in tunnel else f"{tunnel}:{port}"

    def check(authority: str, default: int, where: str) -> None:
        try:
            named, named_port = split_authority(authority, default)
        except BadTarget as exc:
            raise BadMessage(400, str(exc)) from None
        if named != tunnel or named_port != port:
            raise Blocked("host-mismatch", mismatch_body(shown, authority[:200], where))

    target = head.target
    if head.method == "CONNECT":
        check(target, 443, "CONNECT target")
        raise BadMessage(400, "CONNECT inside a CONNECT tunnel: send the request itself")
    absolute = split_absolute(target)
    if absolute is not None:
        scheme, authority, target = absolute
        check(authority, 443 if scheme == "https" else 80, "request URL")
    hosts = [v.strip() for k, v in head.headers if k.lower() == "host"]
    if len(hosts) > 1:
        raise BadMessage(400, "more than one Host header")
    if hosts:
        check(hosts[0], port, "Host header")  # no port: the tunnel's
    return target


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> int:
    total = 0
    try:
        while data := await src.read(COPY_SIZE):
            total += len(data)
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()  # half-close: the other direction may still be talking
    except (ConnectionError, OSError):
        dst.transport.abort()
    return total


async def _splice(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    up_r: asyncio.StreamReader,
    up_w: asyncio.StreamWriter,
) -> tuple[int, int]:
    try:
        up, down = await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
    finally:
        up_w.transport.abort()
    return up, down


def _authority(target: str, default_port: int) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port:
        host, port = target, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadMessage(400, f"bad CONNECT target '{target}': expected HOST:PORT")
    return host.lower(), int(port)


def _absolute(target: str) -> tuple[str, int, str]:
    if not target.startswith(("http://", "HTTP://")):
        raise ValueError(
            "this is a proxy: send requests with an absolute http:// URL "
            "(https goes through CONNECT)"
        )
    try:
        url = httptools.parse_url(target.encode("latin-1"))
    except httptools.HttpParserInvalidURLError:
        raise ValueError(f"malformed URL '{target[:200]}'") from None
    if not url.host:
        raise ValueError(f"no host in URL '{target[:200]}'")
    path = (url.path or b"/").decode("latin-1")
    if url.query:
        path += "?" + url.query.decode("latin-1")
    return url.host.decode("latin-1").lower().strip("[]"), url.port or 80, path


_PHRASES = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _phrase(status: int) -> str:
    return _PHRASES.get(status, "Status")
