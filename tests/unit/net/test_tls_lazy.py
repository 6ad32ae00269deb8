"""The sandbox CA loads cryptography at its first leaf, not before: a supervisor (a pool
member, a sandbox without credentials) that never intercepts TLS does not carry it
(~8 MiB of RSS). Loading still fails closed on files that are not a CA."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from sandkit.errors import ProxyError
from sandkit.net.tls import CA_CERT, CA_KEY, CertificateAuthority

PROBE = """
import json, sys
from pathlib import Path
import sandkit.sandbox.supervisor.boot, sandkit.sandbox.supervisor.adopt
import sandkit.sandbox.supervisor.control, sandkit.net.service, sandkit.net.proxy
from sandkit.net.tls import CertificateAuthority
ca = CertificateAuthority.load_or_create(Path(sys.argv[1]))
before = sorted(m for m in sys.modules if m.startswith("cryptography"))
ca.server_context("api.test")
after = sorted(m for m in sys.modules if m.startswith("cryptography"))
print(json.dumps([ca.cert_pem.decode(), before, bool(after)]))
"""


def probe(ca_dir: Path) -> tuple[str, list[str], bool]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(ca_dir)], capture_output=True, text=True, check=True
    )
    pem, before, after = json.loads(out.stdout)
    return pem, before, after


def test_a_supervisor_loads_cryptography_only_at_the_first_leaf(tmp_path: Path) -> None:
    made = CertificateAuthority.load_or_create(tmp_path / "ca")  # created here: it needs it
    pem, before, after = probe(tmp_path / "ca")
    assert before == []
    assert after is True
    assert pem.encode() == made.cert_pem == (tmp_path / "ca" / CA_CERT).read_bytes()


def test_a_loaded_ca_signs_leaves_the_created_one_would(tmp_path: Path) -> None:
    made = CertificateAuthority.load_or_create(tmp_path / "ca")
    loaded = CertificateAuthority.load_or_create(tmp_path / "ca")
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(loaded.leaf_pem("api.test"))
    issuer = x509.load_pem_x509_certificate(made.cert_pem)
    leaf.verify_directly_issued_by(issuer)
    assert isinstance(loaded.server_context("api.test"), ssl.SSLContext)


def test_files_that_are_no_pem_fail_at_load(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    (ca_dir / CA_KEY).write_text("garbage")
    (ca_dir / CA_KEY).chmod(0o600)
    (ca_dir / CA_CERT).write_text("garbage")
    with pytest.raises(ProxyError, match="cannot be loaded"):
        CertificateAuthority.load_or_create(ca_dir)


def test_a_pem_that_does_not_parse_fails_the_first_leaf(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    key = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    (ca_dir / CA_KEY).write_text(key)
    (ca_dir / CA_KEY).chmod(0o600)
    cert = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    (ca_dir / CA_CERT).write_text(cert)
    ca = CertificateAuthority.load_or_create(ca_dir)
    with pytest.raises(ProxyError, match="cannot be loaded"):
        ca.server_context("api.test")
