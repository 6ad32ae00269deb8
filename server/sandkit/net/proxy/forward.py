"""One forwarded request: plain HTTP in absolute form, or a request inside a terminated
tunnel. Its target is checked, the policy decides, the credential is injected, and the
exchange (``exchange``) goes over a kept-alive connection to the origin when it can."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httptools

from sandkit.net import answers
from sandkit.net.actions import Action
from sandkit.net.decisions import Decision
from sandkit.net.guard import mismatch_body
from sandkit.net.httpio import BadMessage, Head, Headers, MessageReader
from sandkit.net.proxy import decide, oauth
from sandkit.net.proxy.exchange import exchange
from sandkit.net.proxy.upstream import Upstream
from sandkit.net.scrub import Needle, Scrubber, UnsupportedEncoding
from sandkit.net.target import BadTarget, split_absolute, split_authority

if TYPE_CHECKING:
    from sandkit.net.proxy.server import EgressProxy


@dataclass
class Request:
    """Where a request goes and what is sent there."""

    host: str
    port: int
    path: str  # with the query
    headers: Headers
    secure: bool  # inside a terminated tunnel: TLS to the origin, responses scrubbed


async def forward(
    proxy: EgressProxy,
    head: Head,
    writer: asyncio.StreamWriter,
    messages: MessageReader,
    origin: tuple[str, int] | None,
    upstream: Upstream | None,
) -> tuple[bool, Upstream | None]:
    """Answer one request; whether the client's connection goes on, and the upstream
    connection to keep for the next request."""
    started = time.monotonic()
    request, mismatch = _request(head, origin)
    scheme = "https" if request.secure else "http"
    path = request.path.split("?", 1)[0]
    decision = Decision(
        proxy.s.sandbox, head.method, scheme, request.host, request.port, "blocked", "", path=path
    )
    try:
        if mismatch is not None:
            raise mismatch
        return await _allowed(proxy, head, request, writer, messages, upstream, decision)
    except decide.Blocked as blocked:
        decision.reason, decision.status = blocked.code, 403
        await answers.forbidden(writer, blocked.code, blocked.body)
    except UnsupportedEncoding as exc:
        decision.status = 502
        decision.warnings.append(str(exc))
        await answers.error(writer, 502, str(exc))
    except (OSError, TimeoutError) as exc:
        decision.status = 502
        await answers.error(writer, 502, f"cannot reach {request.host}:{request.port}: {exc}")
    finally:
        decision.latency_ms = round((time.monotonic() - started) * 1000, 2)
        proxy.s.log.record(decision)
    return False, upstream


async def _allowed(
    proxy: EgressProxy,
    head: Head,
    request: Request,
    writer: asyncio.StreamWriter,
    messages: MessageReader,
    upstream: Upstream | None,
    decision: Decision,
) -> tuple[bool, Upstream | None]:
    host, port = request.host, request.port
    reuse = upstream is not None and upstream.key == (host, port) and not upstream.closed
    known = upstream.address if upstream is not None and reuse else None
    verdict, resolved = await decide.decide(
        proxy, host, port, head.method, request.path, known, client=messages.stream
    )
    decide.note(decision, verdict)
    if verdict.action is not Action.ALLOW:
        raise decide.blocked(proxy.s, host, port, verdict)
    decision.reason = str(verdict.reason)
    s = proxy.s
    injection = s.injector.apply(host, request.path, request.headers, secure=request.secure)
    decision.credentials, decision.warnings = injection.injected, injection.warnings
    headers = injection.headers
    if s.oauth and request.secure:  # sentinels become real tokens over TLS only
        headers, swapped, notes = oauth.swap(s.oauth, host, headers)
        decision.credentials += swapped
        decision.warnings += notes
    if upstream is None or not reuse:
        if upstream is not None:
            upstream.close()
        address = await decide.address(s, host, port, verdict, resolved)
        tls = s.upstream_tls if request.secure else None
        upstream = await Upstream.open(host, port, address, tls)
    # Responses from a terminated tunnel go back scrubbed of real secrets.
    scrubber = _scrubber(s.injector.scrubber, s.oauth, host) if request.secure else None
    sent = Request(host, port, request.path, headers, request.secure)
    binding = oauth.token_binding(s.oauth, host, head.method, request.path)
    try:
        if binding is not None and request.secure:
            keep = await oauth.token_exchange(
                binding, head, sent, writer, messages, upstream, decision
            )
        else:
            keep = await exchange(head, sent, writer, messages, upstream, decision, scrubber)
    except BaseException:
        upstream.close()  # the caller never sees this connection: close it here
        raise
    decision.action = "allowed"
    if not keep:
        upstream.close()
    return keep, upstream


def _scrubber(
    base: Scrubber, bindings: tuple[oauth.OAuthBinding, ...], host: str
) -> Scrubber | None:
    """The injector's scrubber, plus this host's real OAuth tokens (read now: a refresh
    may have rotated them) so that a reflected token goes back as its sentinel."""
    extra: list[Needle] = []
    for b in oauth.active(bindings):
        if host.lower().rstrip(".") not in b.hosts() or (tokens := b.tokens()) is None:
            continue
        extra.append(Needle(tokens.access.encode(), b.sentinels.access.encode(), b.service))
        if tokens.refresh:
            extra.append(Needle(tokens.refresh.encode(), b.sentinels.refresh.encode(), b.service))
    if extra:
        return Scrubber([*base.needles, *extra])
    return base if base else None


def _request(head: Head, origin: tuple[str, int] | None) -> tuple[Request, decide.Blocked | None]:
    """The request's destination, and the refusal to answer if it names another host
    than its tunnel's."""
    if origin is not None:
        host, port = origin
        try:
            return Request(host, port, tunnel_target(head, host, port), head.headers, True), None
        except decide.Blocked as blocked:
            return Request(host, port, head.target, head.headers, True), blocked
    try:
        host, port, path = absolute(head.target)
    except ValueError as exc:
        raise BadMessage(400, str(exc)) from None
    # RFC 9112 §3.2.2: a proxy replaces Host with the URL's authority, so the origin
    # serves the host the policy judged, not one the client names.
    headers = [(k, v) for k, v in head.headers if k.lower() != "host"]
    return Request(host, port, path, headers, False), None


def tunnel_target(head: Head, host: str, port: int) -> str:
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
            raise decide.Blocked("host-mismatch", mismatch_body(shown, authority[:200], where))

    target = head.target
    if head.method == "CONNECT":
        check(target, 443, "CONNECT target")
        raise BadMessage(400, "CONNECT inside a CONNECT tunnel: send the request itself")
    absolute_form = split_absolute(target)
    if absolute_form is not None:
        scheme, authority, target = absolute_form
        check(authority, 443 if scheme == "https" else 80, "request URL")
    hosts = [v.strip() for k, v in head.headers if k.lower() == "host"]
    if len(hosts) > 1:
        raise BadMessage(400, "more than one Host header")
    if hosts:
        check(hosts[0], port, "Host header")  # no port: the tunnel's
    return target


def absolute(target: str) -> tuple[str, int, str]:
    """HOST, PORT and path (with the query) of a plain-HTTP request's absolute URL."""
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
