"""The TLS certificate every TLS listener uses.

On first start a self-signed certificate for the configured Hostname is
generated (ECDSA P-256, ten years) when the files are absent; a sysop
replaces them with their own (e.g. from Let's Encrypt) at the same paths
(``[Global] TLSCertificate`` / ``TLSPrivateKey``). Uses ``cryptography``,
which asyncssh already requires.
"""
from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

log = logging.getLogger(__name__)

#: Lifetime of the generated self-signed certificate.
SELF_SIGNED_DAYS = 3650


def ensure_certificate(cert_path: Path, key_path: Path, hostname: str) -> bool:
    """Create a self-signed cert/key pair unless both files exist.

    Returns True when it generated them. The key file is written 0600.
    """
    if cert_path.exists() and key_path.exists():
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname or "localhost")])
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname or "localhost"), x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.IPAddress(ipaddress.ip_address("::1"))]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("generated a self-signed TLS certificate for %s in %s", hostname, cert_path)
    return True


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server SSLContext: TLS 1.2 or newer, the instance's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
