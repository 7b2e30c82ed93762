"""Test material for access control: htpasswd files, keys, certificates and tokens."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import re
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OctKey, RSAKey

from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig

__all__ = [
    "Authority",
    "auth_app",
    "basic",
    "cert_pem",
    "challenge_params",
    "claims",
    "der_b64",
    "ec_key",
    "mint",
    "pem_private",
    "rsa_key",
    "unsigned",
    "write_htpasswd",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def write_htpasswd(path: Path, users: dict[str, str], cost: int = 4) -> Path:
    """An htpasswd file with bcrypt entries (cost 4: fast enough for tests)."""
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()}"
        for user, password in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_private(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def jose(key: PrivateKey) -> Key:
    return (
        ECKey.import_key(key)
        if isinstance(key, ec.EllipticCurvePrivateKey)
        else RSAKey.import_key(key)
    )


def claims(
    *,
    access: list[dict[str, Any]] | None = None,
    issuer: str = "test-issuer",
    audience: str | list[str] = "test-service",
    subject: str = "alice",
    lifetime: float = 300,
    not_before: float | None = None,
) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": int(now + lifetime),
        "nbf": int(not_before if not_before is not None else now),
        "iat": now,
        "jti": "test",
        "access": access or [],
    }


def mint(body: dict[str, Any], key: Key | PrivateKey | bytes, **header: Any) -> str:
    """A signed token; ``header`` adds or replaces header fields (alg, kid, x5c, jwk)."""
    if isinstance(key, bytes):
        key = OctKey.import_key(key)
    elif not isinstance(key, Key):
        key = jose(key)
    if "alg" not in header:
        header["alg"] = {"EC": "ES256", "RSA": "RS256", "oct": "HS256"}[key.key_type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode({"typ": "JWT", **header}, body, key, algorithms=[header["alg"]])


def unsigned(body: dict[str, Any], **header: Any) -> str:
    """A token with ``alg: none`` and no signature."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = {"typ": "JWT", "alg": "none", **header}
    return f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}."


@dataclass
class Authority:
    """A certificate authority made for one test, and certificates it issues."""

    key: PrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str = "wharf test CA") -> Authority:
        key = ec_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def issue(
        self,
        name: str,
        key: PrivateKey | None = None,
        *,
        server: bool = False,
        client: bool = False,
        expired: bool = False,
    ) -> tuple[PrivateKey, x509.Certificate]:
        key = key or ec_key()
        now = dt.datetime.now(dt.UTC)
        start = now - dt.timedelta(days=3 if expired else 0, hours=1)
        end = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def der_b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@contextlib.asynccontextmanager
async def auth_app(
    auth: dict[str, Any], root: Path | None = None, **http: Any
) -> AsyncIterator[tuple[WharfApp, httpx.AsyncClient]]:
    """An in-process app with ``auth`` (filesystem storage under ``root``, else in memory),
    and an httpx client on it."""
    parameters = {"rootdirectory": str(root)} if root is not None else {}
    config = Config(
        storage=StorageConfig(
            driver="inmemory" if root is None else "filesystem",
            parameters=parameters,
            delete_enabled=True,
        ),
        http=HTTPConfig(**{"secret": "test-secret", **http}),
        extra={"auth": auth},
    )
    app = create_app(config)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as client:
            yield app, client
    finally:
        await app.aclose()


def challenge_params(header: str) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate`` challenge."""
    _, _, rest = header.partition(" ")
    return {key: value for key, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest)}
