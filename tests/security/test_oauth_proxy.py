"""OAuth tokens stay on the host whatever the guest or the token endpoint does (issue 16):
a sentinel is swapped only toward its own resource hosts and token endpoint, never for
another sandbox, and a hostile token endpoint answer fails closed (the guest gets a 502,
never a byte of a real token)."""

from __future__ import annotations

import pytest

from sandkit.net.tokens import TokenStore
from tests.integration.test_oauth import (
    OTHER_HOST,
    RESOURCE_HOST,
    Setup,
    assert_no_real_token,
    oauth,
    sign_in,
    spec,
)

__all__ = ["oauth"]  # the fixture, imported to be used here


async def test_a_sentinel_sent_to_another_host_is_not_swapped(oauth: Setup) -> None:
    await sign_in(oauth)
    code, out, err = await oauth.get(OTHER_HOST, "/v1/me", oauth.binding.sentinels.access)
    assert code == 0, err
    # The other host is allowed but not a resource host: it got the sentinel, and
    # answered 401 with it, never the real token.
    assert out.startswith("HTTP/1.1 401"), out
    assert oauth.server.seen_auth == [f"Bearer {oauth.binding.sentinels.access}"]
    assert_no_real_token(out, oauth.server)


async def test_a_reflected_refresh_token_comes_back_as_its_sentinel(oauth: Setup) -> None:
    """The refresh sentinel in a header to the credential's own resource host is swapped
    (the host is the credential's); the upstream's reflection of it is scrubbed."""
    await sign_in(oauth)
    _, out, _ = await oauth.get(RESOURCE_HOST, "/v1/me", oauth.binding.sentinels.refresh)
    assert oauth.server.seen_auth == [f"Bearer {oauth.server.refresh}"]
    assert f"Bearer {oauth.binding.sentinels.refresh}" in out
    assert_no_real_token(out, oauth.server)


async def test_another_sandboxs_sentinel_is_not_swapped(oauth: Setup) -> None:
    await sign_in(oauth)
    theirs = TokenStore(oauth.store.path).sentinels("someone-else", "anthropic", spec())
    assert theirs.access != oauth.binding.sentinels.access
    _, out, _ = await oauth.get(RESOURCE_HOST, "/v1/me", theirs.access)
    assert out.startswith("HTTP/1.1 401"), out
    assert oauth.server.seen_auth == [f"Bearer {theirs.access}"]
    assert_no_real_token(out, oauth.server)


@pytest.mark.parametrize("code", ["huge", "malformed", "html", "array"])
async def test_a_hostile_token_answer_fails_closed(oauth: Setup, code: str) -> None:
    status, out, err = await oauth.post_token(f"grant_type=authorization_code&code={code}")
    assert status == 0, err
    assert out.startswith("HTTP/1.1 502"), out[:300]
    assert_no_real_token(out, oauth.server)
    assert "x" * 1000 not in out
    assert oauth.store.get("anthropic", "sbx1") is None  # nothing stored from it


async def test_a_token_request_body_over_the_bound_is_refused(oauth: Setup) -> None:
    big = oauth.store.path.parent / "big-request"
    big.write_text("grant_type=authorization_code&code=good&pad=" + "a" * (1 << 20))
    status, out, err = await oauth.post_token(f"@{big}")
    assert status == 0, err
    # curl asks with Expect: 100-continue; the proxy says go on, then refuses past 1 MiB.
    assert out.startswith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413"), out[:300]
    assert oauth.server.issued == 0
