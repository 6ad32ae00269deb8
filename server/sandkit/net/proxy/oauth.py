"""OAuth glue for the proxy: which hosts a sandbox's OAuth credentials touch, the
sentinels swapped back in request headers to those hosts, and the token endpoint's
exchange, held whole (bounded) so its answer can be rewritten (``net/oauth.py``) before
a byte reaches the guest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandkit.kits.model import OAuthSpec
from sandkit.net import answers
from sandkit.net.decisions import Decision
from sandkit.net.httpio import Head, MessageReader, encode_head, end_to_end
from sandkit.net.oauth import (
    MAX_TOKEN_BODY,
    BadTokenResponse,
    Sentinels,
    Tokens,
    fields,
    rewrite_token_response,
    swap_headers,
    swap_refresh_body,
)
from sandkit.net.tokens import TokenStore

if TYPE_CHECKING:
    from sandkit.net.proxy.forward import Request
    from sandkit.net.proxy.upstream import Upstream


class TooLarge(Exception):
    pass


@dataclass(frozen=True)
class OAuthBinding:
    """One OAuth credential of one sandbox: its sentinels, and where its real tokens are."""

    service: str
    spec: OAuthSpec
    sentinels: Sentinels
    store: TokenStore
    sandbox: str | None = None

    def hosts(self) -> set[str]:
        return {_norm(self.spec.token_host), *(_norm(h) for h in self.spec.resource_hosts)}

    def is_token_request(self, host: str, method: str, path: str) -> bool:
        return (
            method == "POST"
            and _norm(host) == _norm(self.spec.token_host)
            and path.split("?", 1)[0] == self.spec.token_path
        )

    def tokens(self) -> Tokens | None:
        return self.store.get(self.service, self.sandbox)


def _norm(host: str) -> str:
    return host.lower().rstrip(".")


def active(bindings: Sequence[OAuthBinding]) -> tuple[OAuthBinding, ...]:
    """Bindings the proxy acts on: passthrough ones (sbx's downgrade) it leaves alone."""
    return tuple(b for b in bindings if not b.spec.passthrough)


def intercepts(bindings: Sequence[OAuthBinding], host: str) -> bool:
    return any(_norm(host) in b.hosts() for b in active(bindings))


def swap(
    bindings: Sequence[OAuthBinding], host: str, headers: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Headers with this host's own sentinels replaced by the real tokens; the services
    swapped, and warnings. A sentinel sent to any other host stays a sentinel."""
    out, done, warnings = list(headers), [], []
    for b in active(bindings):
        if _norm(host) not in b.hosts():
            continue
        if not any(b.sentinels.access in v or b.sentinels.refresh in v for _, v in out):
            continue
        tokens = b.tokens()
        if tokens is None:
            warnings.append(
                f"no OAuth tokens for '{b.service}' on the host yet: sign in first; "
                "the sentinel was left as is"
            )
            continue
        pairs = [(b.sentinels.access, tokens.access)]
        if tokens.refresh:
            pairs.append((b.sentinels.refresh, tokens.refresh))
        out, swapped = swap_headers(out, pairs)
        if swapped:
            done.append(b.service)
    return out, done, warnings


def token_binding(
    bindings: Sequence[OAuthBinding], host: str, method: str, path: str
) -> OAuthBinding | None:
    return next((b for b in active(bindings) if b.is_token_request(host, method, path)), None)


async def _read_bounded(source: AsyncIterator[bytes]) -> bytes:
    data = bytearray()
    async for piece in source:
        data += piece
        if len(data) > MAX_TOKEN_BODY:
            raise TooLarge
    return bytes(data)


async def token_exchange(
    binding: OAuthBinding,
    head: Head,
    request: Request,
    writer: asyncio.StreamWriter,
    messages: MessageReader,
    upstream: Upstream,
    decision: Decision,
) -> bool:
    """A request to the token endpoint: its refresh sentinel swapped for the real refresh
    token, sent upstream; a success answer rewritten (sentinels to the guest, real tokens
    stored), any other answer passed as it came. Fails closed: an answer too large or
    not a token response is a 502 and the guest gets nothing of it."""
    names = fields(binding.spec)
    body = await _read_request_body(head, writer, messages, upstream, decision)
    if body is None:
        return False
    current = binding.tokens()
    body = _swap_refresh(binding, current, head, names, body)
    await _send_request(request, upstream, body)
    decision.bytes_up = len(body)
    response = await _final_response(upstream)
    decision.status = response.status
    try:
        answer = await _read_bounded(upstream.messages.body())
    except TooLarge:
        upstream.closed = True
        decision.status = 502
        decision.warnings.append("token endpoint answer larger than 1 MiB: refused")
        await answers.error(writer, 502, "the token endpoint's answer is too large")
        return False
    if 200 <= response.status < 300:
        rewritten = await _take_tokens(
            binding, current, names, response, answer, writer, upstream, decision
        )
        if rewritten is None:
            return False
        answer = rewritten
    else:
        # Untouched, except a real token reflected back (the guest sent none).
        for real, sentinel in _reals(current, binding.sentinels):
            answer = answer.replace(real.encode(), sentinel.encode())
    return await _answer_guest(head, response, answer, writer, upstream, decision)


async def _read_request_body(
    head: Head,
    writer: asyncio.StreamWriter,
    messages: MessageReader,
    upstream: Upstream,
    decision: Decision,
) -> bytes | None:
    """The guest's request body, whole; None (a 413 sent) when it is too large."""
    if (head.get("expect") or "").strip().lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the body is read here, whole
    try:
        return await _read_bounded(messages.body())
    except TooLarge:
        upstream.closed = True
        await answers.error(writer, 413, "token request larger than 1 MiB")
        decision.status = 413
        return None


def _swap_refresh(
    binding: OAuthBinding, current: Tokens | None, head: Head, names: dict[str, str], body: bytes
) -> bytes:
    """The body with the refresh sentinel replaced by the real refresh token, if any."""
    if current is not None and current.refresh:
        content_type = head.get("content-type") or ""
        swapped = swap_refresh_body(
            body, content_type, names, binding.sentinels.refresh, current.refresh
        )
        if swapped is not None:
            return swapped
    return body


async def _send_request(request: Request, upstream: Upstream, body: bytes) -> None:
    headers = [
        (k, v)
        for k, v in end_to_end(request.headers)
        if k.lower() not in ("content-length", "transfer-encoding", "accept-encoding", "expect")
    ]
    headers += [("Content-Length", str(len(body))), ("Accept-Encoding", "identity")]
    if not any(k.lower() == "host" for k, _ in headers):
        headers.insert(0, ("Host", request.host))
    upstream.writer.write(encode_head(f"POST {request.path} HTTP/1.1", headers) + body)
    await upstream.writer.drain()


async def _final_response(upstream: Upstream) -> Head:
    """The upstream's answer head, past any 1xx interim answers."""
    response = await upstream.messages.head()
    while response is not None and 100 <= response.status < 200:
        async for _ in upstream.messages.body():
            pass
        response = await upstream.messages.head()
    if response is None:
        raise ConnectionError("upstream closed without a response")
    return response


async def _take_tokens(
    binding: OAuthBinding,
    current: Tokens | None,
    names: dict[str, str],
    response: Head,
    answer: bytes,
    writer: asyncio.StreamWriter,
    upstream: Upstream,
    decision: Decision,
) -> bytes | None:
    """A success answer rewritten to sentinels, its real tokens stored; None (a 502
    sent) when it is not a token response."""
    kind = (response.get("content-type") or "").split(";", 1)[0].strip().lower()
    encoding = (response.get("content-encoding") or "identity").strip().lower()
    try:
        if kind != "application/json" and not kind.endswith("+json"):
            raise BadTokenResponse(f"token response of type '{kind or 'none'}'")
        if encoding != "identity":
            raise BadTokenResponse(f"token response encoded as '{encoding}'")
        answer, tokens = rewrite_token_response(
            answer,
            names,
            binding.sentinels,
            now=time.time(),
            previous_refresh=current.refresh if current else None,
        )
    except BadTokenResponse as exc:
        upstream.closed = True
        decision.status = 502
        decision.warnings.append(f"token endpoint answer refused: {exc}")
        await answers.error(writer, 502, f"the token endpoint's answer was refused: {exc}")
        return None
    scope = binding.store.scope_holding(binding.service, binding.sandbox)
    await asyncio.to_thread(binding.store.put, binding.service, tokens, scope)
    decision.credentials.append(binding.service)
    return answer


async def _answer_guest(
    head: Head,
    response: Head,
    answer: bytes,
    writer: asyncio.StreamWriter,
    upstream: Upstream,
    decision: Decision,
) -> bool:
    """Write the (rewritten) answer to the guest; whether its connection stays open."""
    back = [
        (k, v)
        for k, v in end_to_end(response.headers)
        if k.lower() not in ("content-length", "transfer-encoding")
    ]
    back.append(("Content-Length", str(len(answer))))
    keep = head.keep_alive
    if not keep:
        back.append(("Connection", "close"))
    phrase = response.reason or answers.phrase(response.status)
    writer.write(encode_head(f"HTTP/1.1 {response.status} {phrase}", back) + answer)
    await writer.drain()
    decision.bytes_down = len(answer)
    if not (response.keep_alive and response.framing != "none"):
        upstream.closed = True
    return keep


def _reals(tokens: Tokens | None, sentinels: Sentinels) -> list[tuple[str, str]]:
    if tokens is None:
        return []
    out = [(tokens.access, sentinels.access)]
    if tokens.refresh:
        out.append((tokens.refresh, sentinels.refresh))
    return out
