"""An upstream CA file (`--upstream-ca`, the editor's `upstreamCa`) is trusted by the proxy
and copied into the guest's trust store: it may hold certificates and nothing else. A file
with a private key in it (a combined key+certificate PEM), another kind of PEM block,
stray text or no certificate is refused with a message that names the file, by every
command that takes one, before anything starts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp
import trustme
from cryptography.hazmat.primitives import serialization
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.cli.test_kit_cli import SANDKIT
from tests.lsp.conftest import start

CA = trustme.CA()
CERT = CA.cert_pem.bytes()
KEY = CA.private_key_pem.bytes()


def _rsa_key() -> bytes:
    """A key in the traditional 'BEGIN RSA PRIVATE KEY' form."""
    key = serialization.load_pem_private_key(
        trustme.CA(key_type=trustme.KeyType.RSA).private_key_pem.bytes(), None
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _pkcs8_key() -> bytes:
    return serialization.load_pem_private_key(KEY, None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# name -> (file content, what the message must say)
BAD = {
    "key-and-cert.pem": (KEY + CERT, "holds a private key (EC PRIVATE KEY)"),
    "cert-then-rsa-key.pem": (CERT + _rsa_key(), "holds a private key (RSA PRIVATE KEY)"),
    "pkcs8-key.pem": (_pkcs8_key() + CERT, "holds a private key (PRIVATE KEY)"),
    "public-key.pem": (
        CERT
        + serialization.load_pem_private_key(KEY, None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "holds a PUBLIC KEY block, which is not a certificate",
    ),
    "stray-text.pem": (CERT + b"password=hunter2\n", "holds text that is not a PEM certificate"),
    "no-cert.pem": (b"# nothing here\n", "holds no certificate"),
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "SANDKIT_POOL_SIZE": "0",
    }


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def serve(env: dict[str, str], ca: Path) -> tuple[int | None, str, str]:
    """`proxy serve --upstream-ca CA`: its exit status and output, or None and the first
    line if it started serving (then it is stopped)."""
    proc = subprocess.Popen(
        [SANDKIT, "proxy", "serve", "--listen", "127.0.0.1:0", "--upstream-ca", str(ca)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # "listening on …" once it serves; "" when it exits
    if first:
        proc.terminate()
        proc.communicate(timeout=30)
        return None, first, ""
    out, err = proc.communicate(timeout=60)
    return proc.returncode, first + out, err


@pytest.mark.parametrize("name", sorted(BAD))
def test_proxy_serve_refuses_anything_but_certificates(
    env: dict[str, str], tmp_path: Path, name: str
) -> None:
    data, why = BAD[name]
    path = write(tmp_path, name, data)
    code, out, err = serve(env, path)
    assert code == 1, f"served with {name}: {out}"
    assert f"upstream CA {path}: {why}" in err, err
    assert "BEGIN CERTIFICATE" in err  # what to give instead
    assert "Traceback" not in err


def test_the_certificates_alone_are_accepted(env: dict[str, str], tmp_path: Path) -> None:
    combined = write(tmp_path, "combined.pem", KEY + CERT)
    assert serve(env, combined)[0] == 1
    # The same CA without its key, in a bundle with comments and a second CA, serves.
    bundle = write(
        tmp_path, "bundle.pem", b"# corporate CA\n" + CERT + b"\n" + trustme.CA().cert_pem.bytes()
    )
    code, out, _ = serve(env, bundle)
    assert code is None and out.startswith("listening on"), out


def test_create_refuses_a_key_before_making_anything(env: dict[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, "key-and-cert.pem", KEY + CERT)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    # A kit that cannot be found: were the CA file not checked first, that would be the error.
    done = subprocess.run(
        [
            SANDKIT,
            "create",
            "--upstream-ca",
            str(path),
            "--kit",
            str(tmp_path / "nokit"),
            "shell",
            str(workspace),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"upstream CA {path}: holds a private key" in done.stderr, done.stderr
    assert not (tmp_path / "state" / "sandkit" / "sandboxes").exists() or not any(
        (tmp_path / "state" / "sandkit" / "sandboxes").iterdir()
    )


@pytest_lsp.fixture(  # type: ignore[untyped-decorator]
    config=ClientServerConfig(server_command=[SANDKIT, "lsp"])
)
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def test_the_editor_setting_refuses_a_key(client: LanguageClient, tmp_path: Path) -> None:
    path = write(tmp_path, "key-and-cert.pem", KEY + CERT)
    folder = tmp_path / "ws"
    folder.mkdir()
    with pytest.raises(JsonRpcException) as caught:
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="sandkit.openWorkspace",
                arguments=[
                    {
                        "folder": str(folder),
                        "name": "ca-check",
                        "kits": [str(tmp_path / "nokit")],
                        "upstreamCa": str(path),
                    }
                ],
            )
        )
    assert f"upstream CA {path}: holds a private key" in str(caught.value)
