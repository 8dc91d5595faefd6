"""Throwaway PKI for TLS tests: a self-signed CA, a server certificate for localhost/127.0.0.1
and a client certificate, as PEM files. Uses the `cryptography` package, or the openssl CLI."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CA_NAME = "orderstream-test-ca"
SERVER_NAME = "localhost"
CLIENT_NAME = "orderstream-test-client"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def available() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return shutil.which("openssl") is not None
    return True


def make_pki(directory: Path) -> Pki:
    """Write the CA and two leaf certificates (with their keys) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    try:
        _with_cryptography(pki)
    except ImportError:
        _with_openssl(pki, directory)
    return pki


def _with_cryptography(pki: Pki) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name(CA_NAME))
        .issuer_name(name(CA_NAME))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    leaves = (
        (pki.server_cert, pki.server_key, SERVER_NAME, ExtendedKeyUsageOID.SERVER_AUTH),
        (pki.client_cert, pki.client_key, CLIENT_NAME, ExtendedKeyUsageOID.CLIENT_AUTH),
    )
    for cert_path, key_path, cn, usage in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if cn == SERVER_NAME:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, key_path)


def _with_openssl(pki: Pki, directory: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    ca_key = directory / "ca.key"
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca_key), "-out", str(pki.ca), "-days", "1", "-subj", f"/CN={CA_NAME}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    leaves = (
        (pki.server_cert, pki.server_key, SERVER_NAME,
         "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        (pki.client_cert, pki.client_key, CLIENT_NAME, "extendedKeyUsage=clientAuth\n"),
    )  # fmt: skip
    for cert_path, key_path, cn, extensions in leaves:
        csr, ext = directory / f"{cn}.csr", directory / f"{cn}.ext"
        ext.write_text(extensions)
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key_path), "-out", str(csr), "-subj", f"/CN={cn}")  # fmt: skip
        run("x509", "-req", "-in", str(csr), "-CA", str(pki.ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert_path), "-days", "1",
            "-extfile", str(ext))  # fmt: skip
