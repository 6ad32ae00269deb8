"""The agent's ~/.docker/config.json on the docker variant (supervisor/guest.py): the
sandbox's proxy in ``proxies.default``, merged into what the user has."""

from __future__ import annotations

import json

import pytest

from sandkit.sandbox.supervisor.guest import GUEST_NO_PROXY, PROXY_URL, docker_client_config

OURS = {"httpProxy": PROXY_URL, "httpsProxy": PROXY_URL, "noProxy": GUEST_NO_PROXY}


def test_a_new_config_holds_the_proxy_only() -> None:
    made = docker_client_config(None)
    assert made is not None
    assert json.loads(made) == {"proxies": {"default": OURS}}
    assert PROXY_URL == "http://10.0.2.100:3128"


def test_the_users_keys_are_kept_and_the_proxy_wins() -> None:
    theirs = {
        "auths": {"ghcr.io": {}},
        "detachKeys": "ctrl-x",
        "proxies": {
            "default": {"httpProxy": "http://elsewhere:8080", "ftpProxy": "ftp://f"},
            "tcp://other:2376": {"httpProxy": "http://o"},
        },
    }
    made = docker_client_config(json.dumps(theirs).encode())
    assert made is not None
    assert json.loads(made) == {
        "auths": {"ghcr.io": {}},
        "detachKeys": "ctrl-x",
        "proxies": {
            "default": {"ftpProxy": "ftp://f", **OURS},
            "tcp://other:2376": {"httpProxy": "http://o"},
        },
    }
    assert docker_client_config(made) is None  # already right: nothing written again


@pytest.mark.parametrize("text", [b"{not json", b"[]", b'{"proxies": []}', b"\xff"])
def test_a_file_docker_cannot_read_is_left_alone(text: bytes) -> None:
    with pytest.raises(ValueError):
        docker_client_config(text)
