"""Request targets, pure: normalisation, refusal of what cannot be normalised, path
globs by segment, and the authority of absolute-form targets and Host headers."""

from __future__ import annotations

import posixpath
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandkit.net.target import (
    BadTarget,
    PathPattern,
    normalise,
    split_absolute,
    split_authority,
)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", None),
        ("/admin", "/admin", None),
        ("/admin/", "/admin", None),
        ("//admin", "/admin", None),
        ("/a//b///c", "/a/b/c", None),
        ("/./admin", "/admin", None),
        ("/v1/../admin", "/admin", None),
        ("/v1/./x/../../admin", "/admin", None),
        ("/v1/%2e%2e/admin", "/admin", None),
        ("/v1/%2E%2E/admin", "/admin", None),
        ("/v1/.%2e/admin", "/admin", None),
        ("/%2e/admin", "/admin", None),
        ("/%61dmin", "/admin", None),
        ("/%7Euser/%5Fx%2D%2e", "/~user/_x-.", None),
        ("/a%20b", "/a%20b", None),  # not unreserved: stays encoded…
        ("/a%2ab", "/a%2Ab", None),  # …in upper case
        ("/a%252e%252e/x", "/a%252e%252e/x", None),  # decoded once, never twice
        ("/search?q=../admin&x=%2f", "/search", "q=../admin&x=%2f"),
        ("/a?", "/a", ""),
        ("http://api.test/v1/../admin?x=1", "/admin", "x=1"),
        ("https://api.test:8443//admin", "/admin", None),
        ("http://api.test", "/", None),
        ("http://api.test?x", "/", "x"),
        ("*", "*", None),
        ("/caf\u00e9", "/caf\u00e9", None),
    ],
)
def test_normalise(target: str, path: str, query: str | None) -> None:
    result = normalise(target)
    assert (result.path, result.query) == (path, query)
    assert result.readings == (path,)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/..", "climbs above the root"),
        ("/../admin", "climbs above the root"),
        ("/a/../../admin", "climbs above the root"),
        ("/%2e%2e/admin", "climbs above the root"),
        ("//..//admin", "climbs above the root"),
        ("/a%2fb", "encoded slash (%2f)"),
        ("/a%2Fb", "encoded slash (%2F)"),
        ("/a%5cb", "encoded slash (%5c)"),
        ("/a%00b", "encoded NUL"),
        ("/a\x00b", "forbidden character"),
        ("/a\\b", "forbidden character"),
        ("/a b", "forbidden character"),
        ("/a\tb", "forbidden character"),
        ("/a\x7f", "forbidden character"),
        ("/a#frag", "forbidden character"),
        ("/a%", "invalid percent escape '%'"),
        ("/a%4", "invalid percent escape '%4'"),
        ("/a%zz", "invalid percent escape '%zz'"),
        ("/a%%41", "invalid percent escape '%%4'"),
        ("admin", "is not a path"),
        ("", "is not a path"),
        ("api.test:443", "is not a path"),
    ],
)
def test_what_cannot_be_normalised_is_refused(target: str, message: str) -> None:
    with pytest.raises(BadTarget, match=re.escape(message)):
        normalise(target)


@pytest.mark.parametrize(
    ("target", "readings"),
    [
        ("/admin;jsessionid=1", ("/admin;jsessionid=1", "/admin")),
        ("/public/..;/admin", ("/public/..;/admin", "/admin")),
        ("/a;x/b;y/", ("/a;x/b;y", "/a/b")),
        ("/;/admin", ("/;/admin", "/admin")),
    ],
)
def test_path_parameters_give_a_second_reading(target: str, readings: tuple[str, ...]) -> None:
    assert normalise(target).readings == readings


def test_a_parameter_that_climbs_above_the_root_is_refused() -> None:
    with pytest.raises(BadTarget, match="climbs above the root"):
        normalise("/..;/admin")


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/v1/*", "/v1/models", True),
        ("/v1/*", "/v1/models/x", False),  # * stays within one segment
        ("/v1/*", "/v1", False),
        ("/v1/**", "/v1", True),  # ** spans any number of segments, none included
        ("/v1/**", "/v1/a", True),
        ("/v1/**", "/v1/a/b/c", True),
        ("/v1/**", "/v2/a", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("/", "/", True),
        ("/", "/a", False),
        ("/**/admin", "/admin", True),
        ("/**/admin", "/x/y/admin", True),
        ("/**/admin", "/x/y/admin/z", False),
        ("/a/**/b/**/c", "/a/b/c", True),
        ("/a/**/b/**/c", "/a/x/b/y/z/c", True),
        ("/a/**/b/**/c", "/a/x/c/b", False),
        ("/a/**/**/b", "/a/b", True),
        ("/files/*.txt", "/files/a.txt", True),
        ("/files/*.txt", "/files/a.txt/b", False),
        ("/files/*.txt", "/files/dir/a.txt", False),
        ("/f/a*b*c", "/f/abc", True),
        ("/f/a*b*c", "/f/aXbYc", True),
        ("/f/a*b*c", "/f/acb", False),
        ("/f/ab*ba", "/f/aba", False),  # the pieces may not overlap
        ("/f/*", "/f/*", True),
        ("/admin", "/admin", True),
        ("/admin", "/Admin", False),  # paths are case-sensitive
        ("/admin/", "/admin", True),  # a trailing slash is not a different rule
        ("admin", "/admin", True),  # a pattern without its leading slash
        ("/%61dmin", "/admin", True),  # patterns are normalised like paths
        ("//admin", "/admin", True),
        ("/v1/../admin", "/admin", True),
        ("/v1?x=1", "/v1", True),  # the query is not part of a path rule
        ("/**", "*", False),  # OPTIONS * names no path
    ],
)
def test_path_patterns(pattern: str, path: str, matches: bool) -> None:
    assert PathPattern(pattern).matches(path) is matches


def test_a_long_path_against_many_stars_stays_linear() -> None:
    # A guest chooses the path: a backtracking matcher would take ~n^k steps here.
    pattern = PathPattern("/**/a*a*a*a*a*b/**/x")
    path = "/" + "/".join(["a" * 2000] * 30)
    assert not pattern.matches(path)


@given(
    st.lists(st.sampled_from(["a", "b", ".", "..", "", "%2e", "%2E%2e", "%61", ";p"]), max_size=12)
)
def test_normalised_paths_are_stable_and_clean(segments: list[str]) -> None:
    target = "/" + "/".join(segments)
    try:
        result = normalise(target)
    except BadTarget as exc:  # the one refusal these segments can earn
        assert str(exc) == "'..' in the path climbs above the root"
    else:
        for reading in result.readings:
            parts = reading.split("/")[1:]
            assert reading.startswith("/") and "//" not in reading
            assert not any(p in (".", "..") for p in parts)
            assert "%2E" not in reading and "%61" not in reading
            assert normalise(reading).path == reading  # idempotent
        # What posixpath makes of the decoded path, when it never climbs above the root.
        decoded = target.replace("%2e", ".").replace("%2E", ".").replace("%61", "a")
        if ";" not in decoded:
            assert result.path == posixpath.normpath("/" + decoded.lstrip("/")).replace("//", "/")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("https://api.test/v1", ("https", "api.test", "/v1")),
        ("HTTP://Api.Test:80/x?y", ("http", "Api.Test:80", "/x?y")),
        ("https://api.test", ("https", "api.test", "/")),
        ("https://api.test?q", ("https", "api.test", "/?q")),
        ("https://u@evil.test/x", ("https", "u@evil.test", "/x")),
        ("/v1", None),
        ("*", None),
        ("api.test:443", None),
        ("://x/", None),
        ("h t://x/", None),
    ],
)
def test_split_absolute(target: str, expected: tuple[str, str, str] | None) -> None:
    assert split_absolute(target) == expected


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("api.test", ("api.test", 443)),
        ("API.Test.", ("api.test", 443)),
        ("api.test:8443", ("api.test", 8443)),
        ("[::1]", ("::1", 443)),
        ("[::1]:80", ("::1", 80)),
        ("", ("", 443)),
    ],
)
def test_split_authority(authority: str, expected: tuple[str, int]) -> None:
    assert split_authority(authority, 443) == expected


@pytest.mark.parametrize(
    "authority",
    [
        "user@api.test",
        "a:b@api.test",
        "api.test:0",
        "api.test:99999",
        "api.test:x",
        "[::1",
        "[::1]x",
    ],
)
def test_split_authority_refuses(authority: str) -> None:
    with pytest.raises(BadTarget):
        split_authority(authority, 443)
