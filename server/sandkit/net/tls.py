"""The sandbox CA and the leaf certificates it signs for intercepted hosts.

The CA key is created once, 0600, in sandkit's config directory; sandboxes trust its
certificate. Leaves share one key (as mitmproxy does: signing is the cost, not keys) and
are cached per host, so a connection to a known host costs no crypto beyond the handshake."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections import OrderedDict
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandkit.errors import ProxyError

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
LEAF_CACHE = 1024


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sandkit"),
        ]
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class CertificateAuthority:
    def __init__(
        self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, cert_path: Path
    ) -> None:
        self.key = key
        self.cert = cert
        self.cert_path = cert_path
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._leaf_key_pem = self._leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._closed = False

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        """Load the CA from ``directory``, creating it on first use. Fails closed."""
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not key_path.exists():
                return cls._create(cert_path, key_path)
            if key_path.stat().st_mode & 0o077:
                raise ProxyError(
                    f"{key_path} is readable by other users; run "
                    f"`chmod 600 {key_path}` (or delete it to make a new CA)"
                )
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ProxyError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise ProxyError(
                f"the sandbox CA in {directory} cannot be loaded ({exc}); delete "
                f"{key_path} and {cert_path} to create a new one"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ProxyError(f"{key_path} is not an EC key; delete it to create a new CA")
        return cls(key, cert, cert_path)

    @classmethod
    def _create(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = _name(f"sandkit sandbox proxy CA ({os.uname().nodename})")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert, cert_path)

    def close(self) -> None:
        """Forget the cached contexts; no new leaf after this (the proxy that owned the CA
        is done). The leaf key is on disk only while a context loads it: nothing is left
        in /tmp, even by a process that is killed."""
        self._contexts.clear()
        self._closed = True

    def leaf_pem(self, host: str) -> bytes:
        now = dt.datetime.now(dt.UTC)
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(host[:64]))
            .issuer_name(self.cert.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def server_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a leaf for ``host`` (cached)."""
        host = host.lower()
        ctx = self._contexts.get(host)
        if ctx is not None:
            self._contexts.move_to_end(host)
            return ctx
        if self._closed:
            raise ProxyError("the sandbox CA was closed with its proxy: no new leaf")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # The ssl module loads keys from files only: a private folder (0700) for the moment
        # it takes, then gone.
        with tempfile.TemporaryDirectory(prefix="sandkit-leaf-") as folder:
            key, chain = Path(folder) / "key.pem", Path(folder) / "chain.pem"
            _write_private(key, self._leaf_key_pem)
            _write_private(
                chain, self.leaf_pem(host) + self.cert.public_bytes(serialization.Encoding.PEM)
            )
            ctx.load_cert_chain(chain, key)
        ctx.set_alpn_protocols(["http/1.1"])
        self._contexts[host] = ctx
        if len(self._contexts) > LEAF_CACHE:
            self._contexts.popitem(last=False)
        return ctx
