"""Who may use a proxy. The proxy holds the user's real secrets and can raise approval
prompts in the user's terminal and editor, so another local user must not reach it.

- A sandbox's proxy listens on a Unix socket in a private (0700) folder: only the owner's
  processes (the VM's forward among them) can connect (``bind_private``).
- ``sandkit proxy serve`` listens on TCP for curl experiments, so every request to the
  proxy itself must carry a per-run token: ``http://sandkit:TOKEN@127.0.0.1:PORT``
  (``TokenAccess``). A request without it gets 407 and never reaches the policy."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import os
import secrets
import socket
import stat
from pathlib import Path

from sandkit.errors import ProxyError
from sandkit.net import answers
from sandkit.net.httpio import Head

USER = "sandkit"


class TokenAccess:
    """Proxy-Authorization: Basic with user ``sandkit`` and a random per-run token."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)

    def url(self, host: str, port: int) -> str:
        """The proxy URL a client uses (curl -x URL); the token travels in its userinfo."""
        shown = f"[{host}]" if ":" in host else host
        return f"http://{USER}:{self.token}@{shown}:{port}"

    def admits(self, head: Head) -> bool:
        """True if the request carries the token. Its Proxy-Authorization header is taken
        out either way: it is for this proxy, never for the origin."""
        values = [v for k, v in head.headers if k.lower() == "proxy-authorization"]
        head.headers[:] = [(k, v) for k, v in head.headers if k.lower() != "proxy-authorization"]
        return len(values) == 1 and self._valid(values[0])

    def _valid(self, value: str) -> bool:
        scheme, _, encoded = value.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, token = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        expected = self.token.encode()
        # compare_digest: how long the comparison takes says nothing about the token
        return bool(sep) and user == USER.encode() and hmac.compare_digest(token, expected)

    async def refuse(self, writer: asyncio.StreamWriter) -> None:
        body = (
            "sandkit proxy: this proxy needs its per-run token, and the request did not carry\n"
            "it. Use the proxy URL that `sandkit proxy serve` printed, with the token in it:\n"
            f"  curl -x http://{USER}:TOKEN@HOST:PORT ...\n"
        )
        await answers.send(writer, 407, body, [("Proxy-Authenticate", f'Basic realm="{USER}"')])


def private_folder(path: Path) -> Path:
    """``path`` as a folder only its owner can enter: created 0700, or, if it exists, a
    real folder (not a link) that is ours, tightened to 0700."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise ProxyError(
                f"{path} is not a folder of yours: the proxy's socket cannot go there "
                "(remove it and start again)"
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            path.chmod(0o700)
    except OSError as exc:
        raise ProxyError(f"cannot prepare {path} for the proxy's socket: {exc.strerror}") from None
    return path


def bind_private(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, inside a private folder: no other user can
    connect, whatever the umask (connect needs search permission on the folder)."""
    private_folder(path.parent)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        path.unlink(missing_ok=True)  # a socket left by a supervisor that was killed
        sock.bind(str(path))
        path.chmod(0o600)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ProxyError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    return sock
