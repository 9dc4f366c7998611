"""Test helpers: a throwaway CA and certificates for loopback HTTPS (made per test,
never committed)."""
from __future__ import annotations

import datetime
import ipaddress
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class TestCA:
    """A self-signed CA that issues loopback server certificates."""

    __test__ = False

    def __init__(self, name: str = "ige test CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, path) -> str:
        with open(path, "wb") as f:
            f.write(self.pem)
        return str(path)

    def issue(self, serial: int | None = None) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for localhost and 127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(_name("localhost")).issuer_name(self.cert.subject)
                .public_key(key.public_key())
                .serial_number(serial or x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                    critical=False)
                .sign(self.key, hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))

    def write_pair(self, directory, serial: int | None = None) -> tuple[str, str]:
        """A new certificate and key as directory/tls.crt and tls.key, each replaced by
        rename (as the kubelet swaps a mounted secret's files)."""
        cert, key = self.issue(serial)
        paths = []
        for name, data in (("tls.key", key), ("tls.crt", cert)):
            path = os.path.join(directory, name)
            with open(path + ".new", "wb") as f:
                f.write(data)
            os.replace(path + ".new", path)
            paths.append(path)
        return paths[1], paths[0]

    def server_context(self, directory, serial: int | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.write_pair(directory, serial))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.pem.decode())
        return ctx


def peer_serial(ssl_object) -> int:
    """The serial number of the certificate the server presented."""
    return x509.load_der_x509_certificate(ssl_object.getpeercert(binary_form=True)).serial_number
