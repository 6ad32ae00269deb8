"""A real Docker registry for the tests: Debian's `docker-registry` on 127.0.0.1 with its
own CA and TLS certificate (made here with cryptography), htpasswd logins (bcrypt lines
from apache2-utils' `htpasswd`) and its storage in a temporary folder. Clients reach it
by a name (`registry.test`) pinned to 127.0.0.1, as `--resolve` does."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "registry.test"
USER = "pusher"
PASSWORD = "registry-password-5d41b2"
START_TIMEOUT = 30.0  # seconds for the registry to listen (a bound, not a measurement)


@dataclass(frozen=True)
class Registry:
    host: str
    port: int
    ca_file: Path  # the registry's own CA, for the proxy's upstream checks
    user: str
    password: str
    log: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_certificates(home: Path, host: str) -> tuple[Path, Path, Path]:
    """A CA, and a leaf for ``host`` and 127.0.0.1 signed by it: (ca, cert, key) files.
    Go (dockerd, the registry) wants the CA's basic constraints and the leaf's SAN."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandkit test registry CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = home / "ca.pem", home / "cert.pem", home / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(key))
    paths[2].chmod(0o600)
    return paths


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt login line, the only hash the registry's htpasswd auth accepts."""
    done = subprocess.run(
        ["htpasswd", "-niB", user], input=password, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: sandkit-test-registry-secret
  tls:
    certificate: {cert}
    key: {key}
auth:
  htpasswd:
    realm: sandkit-test
    path: {htpasswd}
"""


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


@contextlib.contextmanager
def running_registry(home: Path, host: str = HOST) -> Iterator[Registry]:
    """The registry on a free port of 127.0.0.1, stopped (by its pid) on the way out."""
    home.mkdir(parents=True, exist_ok=True)
    ca, cert, key = make_certificates(home, host)
    htpasswd = home / "htpasswd"
    htpasswd.write_text(htpasswd_line(USER, PASSWORD) + "\n")
    port = free_port()
    config = home / "config.yml"
    config.write_text(
        CONFIG.format(root=home / "storage", port=port, cert=cert, key=key, htpasswd=htpasswd)
    )
    log = home / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Registry(host, port, ca, USER, PASSWORD, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# A mixin that lets Docker use the registry with no `docker login`: the proxy adds the
# registry's Basic login (the secret `registry-test` on the host) to every request to it.
KIT = """\
schemaVersion: "2"
kind: mixin
name: registry-test
description: A private registry; the proxy logs Docker in, no secret in the guest.
permissions:
  network:
    allow: [{host}]
credentials:
  - service: registry-test
    description: the registry's password (`sandkit secret set registry-test`)
    apiKey:
      inject:
        - {{domain: {host}, scheme: basic, username: {user}}}
"""
SERVICE = "registry-test"


def write_kit(folder: Path, host: str = HOST, user: str = USER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(KIT.format(host=host, user=user))
    return folder
