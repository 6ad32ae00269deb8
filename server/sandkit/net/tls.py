"""The sandbox CA and the leaf certificates it signs for intercepted hosts.

The CA key is created once, 0600, in sandkit's config directory; sandboxes trust its
certificate. Leaves share one key (as mitmproxy does: signing is the cost, not keys) and
are cached per host, so a connection to a known host costs no crypto beyond the handshake.

cryptography (~8 MiB of a supervisor's RSS) loads at the first leaf, not with the CA: a
sandbox or pool member that never intercepts TLS never loads it. Loading the CA reads
its certificate's PEM (what the guest trusts) and checks the files' form only."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from sandkit.errors import ProxyError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
LEAF_CACHE = 1024


def _name(common: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

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


def _unloadable(directory: Path, problem: object) -> ProxyError:
    return ProxyError(
        f"the sandbox CA in {directory} cannot be loaded ({problem}); delete "
        f"{directory / CA_KEY} and {directory / CA_CERT} to create a new one"
    )


class _Signer:
    """The parsed CA and the leaves' shared key: what cryptography is loaded for."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = key
        self.cert = cert
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self.leaf_key_pem = self.leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes, directory: Path) -> _Signer:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            cert = x509.load_pem_x509_certificate(cert_pem)
        except (ValueError, TypeError) as exc:
            raise _unloadable(directory, exc) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ProxyError(f"{directory / CA_KEY} is not an EC key; delete it to create a new CA")
        return cls(key, cert)


class CertificateAuthority:
    def __init__(
        self, cert_path: Path, cert_pem: bytes, key_pem: bytes, signer: _Signer | None = None
    ) -> None:
        self.cert_path = cert_path
        self.cert_pem = cert_pem  # what the guest trusts
        self._key_pem = key_pem  # kept, not read again: the key that matches cert_pem
        self._signer = signer  # parsed at the first leaf
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._closed = False

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        """Load the CA from ``directory``, creating it on first use. Fails closed: a key
        readable by others or files that are not PEM fail here; a PEM that does not parse
        fails the first leaf (and so the connection that needed it)."""
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
            key_pem, cert_pem = key_path.read_bytes(), cert_path.read_bytes()
        except ProxyError:
            raise
        except OSError as exc:
            raise _unloadable(directory, exc) from None
        if b"PRIVATE KEY-----" not in key_pem:
            raise _unloadable(directory, f"{key_path} holds no PEM private key")
        if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
            raise _unloadable(directory, f"{cert_path} holds no PEM certificate")
        return cls(cert_path, cert_pem, key_pem)

    @classmethod
    def _create(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

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
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(key_path, key_pem)
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path.write_bytes(cert_pem)
        return cls(cert_path, cert_pem, key_pem, _Signer(key, cert))

    def signer(self) -> _Signer:
        """The parsed CA, loaded (with cryptography) at the first leaf."""
        if self._signer is None:
            self._signer = _Signer.load(self.cert_pem, self._key_pem, self.cert_path.parent)
        return self._signer

    def close(self) -> None:
        """Forget the cached contexts; no new leaf after this (the proxy that owned the CA
        is done). The leaf key is on disk only while a context loads it: nothing is left
        in /tmp, even by a process that is killed."""
        self._contexts.clear()
        self._closed = True

    def leaf_pem(self, host: str) -> bytes:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID

        signer = self.signer()
        now = dt.datetime.now(dt.UTC)
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(host[:64]))
            .issuer_name(signer.cert.subject)
            .public_key(signer.leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()),
                critical=False,
            )
            .sign(signer.key, hashes.SHA256())
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
            leaf = self.leaf_pem(host)  # the signer first: the leaf key comes with it
            _write_private(key, self.signer().leaf_key_pem)
            _write_private(chain, leaf + self.cert_pem)
            ctx.load_cert_chain(chain, key)
        ctx.set_alpn_protocols(["http/1.1"])
        self._contexts[host] = ctx
        if len(self._contexts) > LEAF_CACHE:
            self._contexts.popitem(last=False)
        return ctx
