"""Fixtures for the Beaker tests (imported by each test module: a conftest.py here would clash with
tests/conftest.py as the module `conftest`): a self-signed certificate trusted by gRPC, and a fake Beaker
server (tests/core/backends/beaker/fake_beaker.py) that the real beaker-py client talks to over TLS."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def _self_signed_cert() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


REPO = Path(__file__).resolve().parents[4]


def run_cli(*args: str, env: dict | None = None, timeout: float = 60, module: str = "olmo_tui"):
    """`python -m olmo_tui ...` in a subprocess. Our own copy: with several conftest.py files in
    the suite, `from conftest import ...` may find another directory's conftest."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout)


# gRPC core reads its default trust roots once, when the process opens its first secure
# channel, so the test certificate must be in place before any test runs.
CERT_PEM, KEY_PEM = _self_signed_cert()
_CERT_DIR = Path(tempfile.mkdtemp(prefix="olmo-tui-beaker-cert-"))
(_CERT_DIR / "cert.pem").write_bytes(CERT_PEM)
os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(_CERT_DIR / "cert.pem")


@pytest.fixture
def fake_beaker():
    from fake_beaker import FakeBeaker

    server = FakeBeaker(CERT_PEM, KEY_PEM).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def beaker_env(fake_beaker, monkeypatch, tmp_path):
    """Point beaker-py at the fake through a config file, as a user's ~/.beaker/config.yml would."""
    config = tmp_path / "beaker-config.yml"
    config.write_text(
        f"user_token: {fake_beaker.TOKEN}\n"
        f"agent_address: {fake_beaker.agent_address}\n"
        f"rpc_address: {fake_beaker.rpc_address}\n"
        "default_org: ai2\n"
        "default_workspace: ai2/olmo-tui-tests\n"
    )
    monkeypatch.setenv("BEAKER_CONFIG", str(config))
    monkeypatch.delenv("BEAKER_TOKEN", raising=False)
    monkeypatch.delenv("BEAKER_ADDR", raising=False)
    return fake_beaker
