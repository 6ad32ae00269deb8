"""Response scrubbing, pure: a real secret never passes, whatever the chunking; what is
not a secret passes unchanged and undelayed; compressed bodies are read or refused."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandkit.net.scrub import DECODE_PIECE, Decoder, Needle, Scrubber, UnsupportedEncoding

SECRET = b"sk-live-0123456789abcdef"
PH = b"sandkit-placeholder-api-ffff"
SCRUB = Scrubber(
    [
        Needle(SECRET, PH, "api"),
        Needle(b"token-XYZ", b"PH-TOK", "tok"),
        Needle(b"token-XYZ-long", b"PH-LONG", "long"),  # contains the one above
        Needle(b"", b"never", "empty"),  # an unset value must not match everywhere
    ]
)


def scrub_chunks(chunks: list[bytes], scrubber: Scrubber = SCRUB) -> tuple[bytes, set[str]]:
    body = scrubber.stream()
    out = b"".join(body.feed(c) for c in chunks) + body.flush()
    return out, body.found


def test_headers_names_values_and_the_report() -> None:
    headers, hits = SCRUB.headers(
        [
            ("Access-Control-Allow-Origin", SECRET.decode()),
            ("X-Echo", f"Bearer {SECRET.decode()}, token-XYZ-long"),
            (f"X-{SECRET.decode()}", "1"),
            ("Content-Type", "text/plain"),
        ]
    )
    assert headers == [
        ("Access-Control-Allow-Origin", PH.decode()),
        ("X-Echo", f"Bearer {PH.decode()}, PH-LONG"),
        (f"X-{PH.decode()}", "1"),
        ("Content-Type", "text/plain"),
    ]
    assert hits == [
        ("Access-Control-Allow-Origin", "api"),
        ("X-Echo", "api"),
        ("X-Echo", "long"),
        (f"X-{PH.decode()}", "api"),
    ]


def test_text() -> None:
    assert SCRUB.text(f"OK {SECRET.decode()}") == (f"OK {PH.decode()}", {"api"})
    assert SCRUB.text("OK") == ("OK", set())


def test_the_longest_secret_wins() -> None:
    assert scrub_chunks([b"a token-XYZ-long b token-XYZ c"]) == (
        b"a PH-LONG b PH-TOK c",
        {"long", "tok"},
    )


@pytest.mark.parametrize("cut", range(len(SECRET) + 1))
def test_a_secret_cut_anywhere_is_caught(cut: int) -> None:
    body = b"before " + SECRET + b" after"
    at = len(b"before ") + cut
    assert scrub_chunks([body[:at], body[at:]]) == (b"before " + PH + b" after", {"api"})


def test_a_secret_fed_one_byte_at_a_time_is_caught() -> None:
    body = b"x" + SECRET + b"y" + SECRET + SECRET + b"token-XYZ-long"
    out, found = scrub_chunks([bytes([b]) for b in body])
    assert out == b"x" + PH + b"y" + PH + PH + b"PH-LONG"
    assert found == {"api", "long"}


def test_a_short_secret_is_not_replaced_while_a_longer_one_may_still_complete() -> None:
    body = SCRUB.stream()
    assert body.feed(b"a token-XYZ") == b"a "  # could still become token-XYZ-long
    assert body.feed(b"-long!") == b"PH-LONG!"
    body = SCRUB.stream()
    assert body.feed(b"a token-XYZ") == b"a "
    assert body.feed(b"-lo") == b""
    assert body.feed(b"st") == b"PH-TOK-los"  # the last "t" may start "token-XYZ"
    assert body.flush() == b"t"


def test_text_that_cannot_start_a_secret_is_not_held_back() -> None:
    # Server-sent events end with a blank line: nothing of them may wait for the next one.
    body = SCRUB.stream()
    event = b'data: {"text": "hello"}\n\n'
    assert body.feed(event) == event
    assert body.feed(b"data: sk-li") == b"data: "  # might be the secret: held…
    assert body.feed(b"ve but not\n\n") == b"sk-live but not\n\n"  # …until it is not
    assert body.flush() == b""


def test_what_is_held_is_bounded_by_the_longest_secret() -> None:
    body = SCRUB.stream()
    body.feed(SECRET[:-1])
    assert len(body._pending) == len(SECRET) - 1
    body.feed(b"x" * 10_000 + SECRET[:5])
    assert len(body._pending) == 5
    assert body.flush() == SECRET[:5]


def test_an_empty_scrubber_passes_everything() -> None:
    empty = Scrubber([])
    assert not empty and scrub_chunks([b"abc", SECRET], empty) == (b"abc" + SECRET, set())


@given(
    prefix=st.binary(max_size=40),
    middle=st.binary(max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_never_a_secret_whatever_the_chunking(
    prefix: bytes, middle: bytes, cuts: list[int]
) -> None:
    body = prefix + SECRET + middle + b"token-XYZ" + SECRET[:7]
    points = sorted({min(c, len(body)) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    out, found = scrub_chunks(chunks)
    assert SECRET not in out and b"token-XYZ" not in out.replace(b"PH-TOK", b"")
    assert out == SCRUB.stream().scrubber.replace(body, set())  # chunking changes nothing
    assert "api" in found


def test_decoder_identity_and_gzip_and_deflate() -> None:
    assert not Decoder("").active and not Decoder("identity").active
    plain = b"hello " + SECRET
    for encoding, data in [
        ("gzip", gzip.compress(plain)),
        ("x-gzip", gzip.compress(plain)),
        ("deflate", zlib.compress(plain)),
        ("deflate", zlib.compress(plain)[2:-4]),  # raw deflate, as many servers send it
        ("GZIP, identity", gzip.compress(plain)),
    ]:
        decoder = Decoder(encoding)
        out = b"".join(piece for byte in data for piece in decoder.feed(bytes([byte])))
        assert out + decoder.flush() == plain, encoding


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip", "gzip, br"])
def test_decoder_refuses_what_it_cannot_read(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding, match="cannot read to check it for leaked"):
        Decoder(encoding)


def test_decoder_refuses_a_corrupt_body() -> None:
    decoder = Decoder("gzip")
    with pytest.raises(UnsupportedEncoding, match="corrupt"):
        list(decoder.feed(b"\x1f\x8b" + b"\xff" * 64))
    one_byte = Decoder("gzip")
    assert list(one_byte.feed(b"\x1f")) == []
    with pytest.raises(UnsupportedEncoding, match="corrupt"):
        one_byte.flush()
    assert Decoder("gzip").flush() == b""  # no body at all


def test_a_compression_bomb_comes_out_in_bounded_pieces() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))
    pieces = list(Decoder("gzip").feed(bomb))
    assert max(len(p) for p in pieces) <= DECODE_PIECE
    assert sum(len(p) for p in pieces) == 64 << 20
