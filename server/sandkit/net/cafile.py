"""Extra CA files the user names (``--upstream-ca``, ``upstreamCa``): certificates only.

Such a file is trusted by the proxy for upstream TLS and copied into the guest's trust
store, so anything else in it would travel into the VM: a combined key+certificate PEM
would hand the guest a private key. Only the certificates are read, re-encoded from their
parsed form; anything else in the file is an error that names it."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sandkit.errors import ProxyError

MAX_BYTES = 4 << 20  # a full public CA bundle is ~0.2 MiB
_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)
_FIX = "give a file that holds only the CA's PEM certificate(s) (-----BEGIN CERTIFICATE-----)"


def _fail(path: Path, problem: str) -> ProxyError:
    return ProxyError(f"upstream CA {path}: {problem}; {_FIX}")


def _read(path: Path) -> bytes:
    try:  # a regular file, and not too big (not /dev/zero, not a FIFO)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ProxyError(f"cannot load the upstream CA {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _fail(path, "not a regular file")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _fail(path, f"larger than {MAX_BYTES >> 20} MiB")
    return data


def read_certificates(path: Path) -> bytes:
    """The PEM certificates in ``path``, and nothing else of the file. Raises ProxyError
    naming the file when it holds a private key, any other PEM block, text that is neither
    a certificate nor a ``#`` comment, or no certificate at all."""
    data = _read(path)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _fail(path, "not PEM text (a DER or PKCS#12 file?)") from None
    certificates: list[bytes] = []
    rest: list[str] = []
    last = 0
    for block in _BLOCK.finditer(text):
        rest.append(text[last : block.start()])
        last = block.end()
        label = block.group(1)
        if "PRIVATE KEY" in label:
            raise _fail(path, f"holds a private key ({label}), which must not leave the host")
        if label != "CERTIFICATE":
            raise _fail(path, f"holds a {label} block, which is not a certificate")
        try:
            cert = x509.load_pem_x509_certificate(block.group(0).encode())
        except ValueError:
            raise _fail(path, f"certificate {len(certificates) + 1} cannot be read") from None
        certificates.append(cert.public_bytes(Encoding.PEM))
    rest.append(text[last:])
    for line in "".join(rest).splitlines():
        line = line.strip()
        if "PRIVATE KEY" in line:  # an unterminated or mangled key block
            raise _fail(path, "holds a private key, which must not leave the host")
        if line and not line.startswith("#"):
            raise _fail(path, f"holds text that is not a PEM certificate ({line[:40]!r})")
    if not certificates:
        raise _fail(path, "holds no certificate")
    return b"".join(certificates)
