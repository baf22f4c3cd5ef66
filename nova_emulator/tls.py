"""A local certificate authority and a server certificate for the endpoint.

The CRT transport speaks HTTP/2 only over TLS, so a local endpoint needs a certificate the
client trusts. On first start we mint a CA and a server certificate for ``localhost``,
``127.0.0.1`` and ``::1`` (plus any extra names) and keep them in the state directory; the
client trusts the CA through ``SSL_CERT_FILE``. Keys are written with mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    ca_cert: Path  # what a client trusts: SSL_CERT_FILE
    server_cert: Path
    server_key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write with ``mode`` from the first byte (no window where a key is world-readable)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_ca(now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sonic-fsm local emulator CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _new_server(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    names: list[str],
    now: datetime.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _server_ok(path: Path, names: list[str], now: datetime.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    want = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    return want <= have and cert.not_valid_after_utc - now > RENEW_BEFORE


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def ensure_certificates(
    state_dir: Path, extra_names: tuple[str, ...] = (), now: datetime.datetime | None = None
) -> TlsFiles:
    """The CA and server certificate in ``state_dir``, created or renewed when needed.

    The CA is kept across starts (a client trusts it once); the server certificate is
    re-issued when it nears expiry or lacks a name the server now answers to.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = TlsFiles(
        ca_cert=state_dir / "ca.pem",
        server_cert=state_dir / "server.pem",
        server_key=state_dir / "server-key.pem",
    )
    ca_key_path = state_dir / "ca-key.pem"
    names = ["localhost", "127.0.0.1", "::1", *[n for n in extra_names if n]]
    names = list(dict.fromkeys(names))
    if files.ca_cert.exists() and ca_key_path.exists():
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path}: expected an EC private key")
        ca_key = loaded
    else:
        ca_key, ca = _new_ca(now)
        _write(ca_key_path, _key_pem(ca_key), 0o600)
        _write(files.ca_cert, ca.public_bytes(serialization.Encoding.PEM), 0o644)
        files.server_cert.unlink(missing_ok=True)
    if not _server_ok(files.server_cert, names, now) or not files.server_key.exists():
        key, cert = _new_server(ca_key, ca, names, now)
        _write(files.server_key, _key_pem(key), 0o600)
        _write(files.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS server context that offers only ``h2`` (the SDK's CRT transport asks for it)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.server_cert, files.server_key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client context that trusts the local CA and asks for ``h2`` (light clients, tests)."""
    ctx = ssl.create_default_context(cafile=str(files.ca_cert))
    ctx.set_alpn_protocols(["h2"])
    return ctx
