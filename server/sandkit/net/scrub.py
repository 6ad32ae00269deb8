"""Response scrubbing (pure): a real secret that comes back from an intercepted host is
replaced by its placeholder before the guest sees it.

A server may reflect what it received (CORS echoing ``Origin``, debug endpoints echoing
headers), and what it received includes the injected secret. Headers are scrubbed whole;
bodies are scrubbed as they stream, holding back only a tail that could be the start of a
secret cut by a chunk boundary (at most ``len(secret) - 1`` bytes), so memory stays bounded
and a streamed event is not delayed unless it ends like a secret begins.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

Headers = list[tuple[str, str]]

# Decoded output produced per call: a small compressed bomb cannot make one huge chunk.
DECODE_PIECE = 256 * 1024


@dataclass(frozen=True)
class Needle:
    """A byte string that must never reach the guest, what replaces it, and whose it is."""

    secret: bytes
    replacement: bytes
    service: str


class Scrubber:
    def __init__(self, needles: Iterable[Needle]) -> None:
        # Empty needles would match everywhere; longest first, so that a secret which
        # contains another is replaced whole.
        unique = {n.secret: n for n in needles if n.secret}
        self.needles = tuple(sorted(unique.values(), key=lambda n: len(n.secret), reverse=True))
        self._by_secret = {n.secret: n for n in self.needles}
        self._pattern = (
            re.compile(b"|".join(re.escape(n.secret) for n in self.needles))
            if self.needles
            else None
        )

    def __bool__(self) -> bool:
        return bool(self.needles)

    def _present(self, data: bytes) -> bool:
        return any(n.secret in data for n in self.needles)  # memchr-fast; rarely true

    def replace(self, data: bytes, found: set[str]) -> bytes:
        """Every secret in ``data`` replaced; the services seen are added to ``found``."""
        if self._pattern is None or not self._present(data):
            return data

        def swap(match: re.Match[bytes]) -> bytes:
            needle = self._by_secret[match.group()]
            found.add(needle.service)
            return needle.replacement

        return self._pattern.sub(swap, data)

    def headers(self, headers: Sequence[tuple[str, str]]) -> tuple[Headers, list[tuple[str, str]]]:
        """Headers with secrets replaced, and (header name, service) for each one hit."""
        out: Headers = []
        hits: list[tuple[str, str]] = []
        for name, value in headers:
            found: set[str] = set()
            new_name = self.replace(name.encode("latin-1"), found).decode("latin-1")
            new_value = self.replace(value.encode("latin-1"), found).decode("latin-1")
            out.append((new_name, new_value))
            hits.extend((new_name, service) for service in sorted(found))
        return out, hits

    def text(self, value: str) -> tuple[str, set[str]]:
        found: set[str] = set()
        return self.replace(value.encode("latin-1"), found).decode("latin-1"), found

    def stream(self) -> BodyScrubber:
        return BodyScrubber(self)


@dataclass
class BodyScrubber:
    """Scrubs one body fed piece by piece: ``feed`` each piece, then ``flush`` once."""

    scrubber: Scrubber
    found: set[str] = field(default_factory=set)
    _pending: bytes = b""

    def _held_from(self, data: bytes) -> int:
        """Where the longest suffix of ``data`` that is a proper prefix of a secret
        starts (len(data) if there is none): those bytes may be a secret's beginning."""
        start = len(data)
        for needle in self.scrubber.needles:
            secret = needle.secret
            first = secret[:1]
            at = max(0, len(data) - len(secret) + 1)
            while (at := data.find(first, at)) >= 0:
                if at >= start:
                    break
                if secret.startswith(data[at:]):
                    start = at
                    break
                at += 1
        return start

    def feed(self, piece: bytes) -> bytes:
        data = self._pending + piece if self._pending else piece
        held = self._held_from(data)
        pattern = self.scrubber._pattern
        if pattern is None or not self.scrubber._present(data):
            self._pending = data[held:]
            return data[:held]
        out: list[bytes] = []
        done = 0
        for match in pattern.finditer(data):
            if match.start() >= held:
                break  # complete, but may be the tail of a longer secret: decide later
            out.append(data[done : match.start()])
            needle = self.scrubber._by_secret[match.group()]
            out.append(needle.replacement)
            self.found.add(needle.service)
            done = match.end()
        cut = max(done, held)
        out.append(data[done:cut])
        self._pending = data[cut:]
        return b"".join(out)

    def flush(self) -> bytes:
        data, self._pending = self._pending, b""
        return self.scrubber.replace(data, self.found)


class UnsupportedEncoding(ValueError):
    """A response body in an encoding the proxy cannot read, so cannot scrub."""


class Decoder:
    """Undoes ``Content-Encoding: gzip`` / ``deflate`` so the plain body can be scrubbed.
    Other encodings are refused: the proxy asks for ``identity``, and a body it cannot
    read might carry a secret."""

    def __init__(self, encoding: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise UnsupportedEncoding(
                f"the origin answered with Content-Encoding '{encoding}', which sandkit "
                "cannot read to check it for leaked credentials (it asked for 'identity')"
            )
        self.active = bool(codings)
        self._inflater: zlib._Decompress | None = None
        self._start = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self.active:
            yield data
            return
        if self._inflater is None:
            self._start += data
            if len(self._start) < 2:
                return
            data, self._start = self._start, b""
            self._inflater = zlib.decompressobj(_wbits(data[:2]))
        try:
            while data:
                out = self._inflater.decompress(data, DECODE_PIECE)
                data = self._inflater.unconsumed_tail
                if out:
                    yield out
        except zlib.error:
            raise UnsupportedEncoding("the origin sent a corrupt compressed body") from None

    def flush(self) -> bytes:
        if not self.active or (self._inflater is None and not self._start):
            return b""
        if self._inflater is None:
            raise UnsupportedEncoding("the origin sent a corrupt compressed body")
        return self._inflater.flush()


def _wbits(start: bytes) -> int:
    """gzip, zlib, or the raw deflate that many servers send as "deflate"."""
    if start == b"\x1f\x8b":
        return 31
    if start[0] & 0x0F == 8 and (start[0] << 8 | start[1]) % 31 == 0:
        return 15
    return -15
