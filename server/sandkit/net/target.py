"""Request targets (pure): what path a request really names, and which host.

Method/path rules must judge the path a server will act on, not the text the client
wrote: ``/v1/../admin``, ``/%61dmin``, ``//admin`` and ``/./admin`` all name ``/admin``.
So a target is normalised first (RFC 3986: unreserved characters decoded, dot segments
removed; duplicate slashes collapsed as most servers do), and a target that servers could
read in more than one way (an encoded slash, NUL, ``..`` above the root, a bad escape)
is refused rather than guessed at.

Patterns match whole segments: ``*`` stays within one segment, a ``**`` segment spans
any number of them (none included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")
# Bytes no server should see raw in a path, and that some read as separators (``\``).
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\#]")


class BadTarget(ValueError):
    """A request target that cannot be normalised; the message is for the agent."""


@dataclass(frozen=True)
class Target:
    path: str  # normalised, always starts with "/" ("*" for OPTIONS *)
    query: str | None
    # Every way a server may read the path: with ";params" stripped too, as Java servlet
    # containers do. A deny rule applies if it matches any reading, an allow rule only if
    # it matches all of them.
    readings: tuple[str, ...]


def split_absolute(target: str) -> tuple[str, str, str] | None:
    """``scheme://authority/path?q`` → (scheme, authority, "/path?q"); None if the target
    is not in absolute form."""
    scheme, sep, rest = target.partition("://")
    if not sep or not scheme or not scheme.isascii() or not scheme.isalpha():
        return None
    end = len(rest)
    for stop in "/?":
        at = rest.find(stop)
        if at >= 0:
            end = min(end, at)
    authority, path = rest[:end], rest[end:]
    if not path.startswith("/"):
        path = "/" + path
    return scheme.lower(), authority, path


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` → (host in lower case without a trailing dot, port).
    User information (``user@host``) is refused: parsers disagree on where the host starts."""
    if "@" in authority:
        raise BadTarget(f"'{authority[:200]}': user information is not allowed in a request")
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise BadTarget(f"'{authority[:200]}': missing ']' after the IPv6 address")
        host, rest = authority[1:close], authority[close + 1 :]
        if rest and not rest.startswith(":"):
            raise BadTarget(f"'{authority[:200]}': expected ':PORT' after ']'")
        port_text = rest[1:]
    else:
        host, _, port_text = authority.partition(":")
    if not port_text:
        port = default_port
    elif port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise BadTarget(f"'{authority[:200]}': the port must be a number from 1 to 65535")
    return host.lower().rstrip("."), port


def _decode(path: str) -> str:
    """Decode percent-escapes of unreserved characters; keep the others encoded, in upper
    case, so ``%2a`` and ``%2A`` compare equal."""
    out: list[str] = []
    i = 0
    while True:
        at = path.find("%", i)
        if at < 0:
            out.append(path[i:])
            return "".join(out)
        out.append(path[i:at])
        pair = path[at + 1 : at + 3]
        if len(pair) != 2 or not set(pair) <= _HEX:
            raise BadTarget(f"invalid percent escape '{path[at : at + 3]}' in the path")
        byte = int(pair, 16)
        if byte == 0:
            raise BadTarget("the path holds an encoded NUL (%00)")
        if byte in (0x2F, 0x5C):
            raise BadTarget(
                f"the path holds an encoded slash (%{pair}); servers disagree on whether it "
                "separates segments, so rules cannot judge it"
            )
        out.append(chr(byte) if byte in _UNRESERVED else "%" + pair.upper())
        i = at + 3


def _segments(path: str, *, strict: bool) -> list[str]:
    """Segments after collapsing empty ones and removing dot segments (RFC 3986 §5.2.4).
    ``..`` above the root is an error when ``strict``, else it stays at the root."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not out and strict:
                raise BadTarget("'..' in the path climbs above the root")
            if out:
                out.pop()
            continue
        out.append(segment)
    return out


def _join(segments: list[str]) -> str:
    return "/" + "/".join(segments)


def normalise(target: str) -> Target:
    """Normalise a request target (origin, absolute or asterisk form)."""
    if target == "*":
        return Target("*", None, ("*",))
    absolute = split_absolute(target)
    if absolute is not None:
        target = absolute[2]
    if not target.startswith("/"):
        raise BadTarget(f"'{target[:200]}' is not a path: it must start with '/'")
    raw_path, sep, query = target.partition("?")
    bad = _FORBIDDEN.search(raw_path)
    if bad is not None:
        raise BadTarget(f"the path holds a forbidden character {bad.group()!r}")
    decoded = _decode(raw_path)
    path = _join(_segments(decoded, strict=True))
    readings = [path]
    if ";" in decoded:
        # "/public/..;/admin" is "/admin" to Tomcat: strip parameters, then dot segments.
        stripped = "/".join(s.split(";", 1)[0] for s in decoded.split("/"))
        readings.append(_join(_segments(stripped, strict=True)))
    return Target(path, query if sep else None, tuple(dict.fromkeys(readings)))


class PathPattern:
    """A kit's path glob, normalised like a request path (leniently: a kit author's
    pattern is not refused, ``..`` simply stays at the root)."""

    def __init__(self, text: str) -> None:
        self.text = text
        raw = text.partition("?")[0]
        try:
            decoded = _decode(raw)
        except BadTarget:
            decoded = raw
        segments = _segments(decoded, strict=False)
        # Adjacent "**" are one "**": keeps matching linear in the number of segments.
        self._segments: list[str | None] = []  # None stands for "**"
        for s in segments:
            if s == "**":
                if not self._segments or self._segments[-1] is not None:
                    self._segments.append(None)
            else:
                self._segments.append(s)

    def __repr__(self) -> str:
        return f"PathPattern({self.text!r})"

    def matches(self, path: str) -> bool:
        if path == "*":
            return False  # OPTIONS * names no path
        return _match_segments(self._segments, _segments(path, strict=False))


def _match_segments(pattern: list[str | None], segments: list[str]) -> bool:
    """Glob over segments, ``None`` matching any run of them: the classic greedy matcher
    with one back-tracking point, O(len(pattern) × len(segments))."""
    p = s = 0
    star, mark = -1, 0
    while s < len(segments):
        if p < len(pattern) and pattern[p] is None:
            star, mark = p, s
            p += 1
        elif p < len(pattern) and _match_segment(pattern[p] or "", segments[s]):
            p += 1
            s += 1
        elif star >= 0:
            mark += 1
            p, s = star + 1, mark
        else:
            return False
    while p < len(pattern) and pattern[p] is None:
        p += 1
    return p == len(pattern)


def _match_segment(glob: str, segment: str) -> bool:
    """``*`` matches any run of characters within the segment. Pieces are found left to
    right with ``str.find``: linear, whatever the client sends."""
    pieces = glob.split("*")
    if len(pieces) == 1:
        return glob == segment
    first, last = pieces[0], pieces[-1]
    if len(segment) < len(first) + len(last):
        return False
    if not segment.startswith(first) or not segment.endswith(last):
        return False
    at, end = len(first), len(segment) - len(last)
    for piece in pieces[1:-1]:
        found = segment.find(piece, at, end)
        if found < 0:
            return False
        at = found + len(piece)
    return True
