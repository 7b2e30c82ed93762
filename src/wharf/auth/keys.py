"""Keys for signing and verifying tokens: PEM files, JWKS files, thumbprints, x5c chains."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet, OctKey, OKPKey, RSAKey

__all__ = [
    "KEY_TYPES",
    "SigningKey",
    "chain_key",
    "jose_key",
    "key_ids",
    "load_jwks",
    "load_root_certificates",
    "load_signing_key",
    "secret_signing_key",
]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

#: The JWK key type each algorithm family needs: checked before any signature is, so a
#: public key can never be used as an HMAC secret (the classic algorithm confusion).
KEY_TYPES = {"HS": "oct", "RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
#: Longest certificate chain followed in a token's x5c header.
_MAX_CHAIN = 8


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key with the algorithm it signs with and the key ID its tokens carry."""

    key: Key
    algorithm: str
    kid: str

    def public(self) -> Key:
        if isinstance(self.key, OctKey):
            return self.key
        return jose_key(self.key.public_key)


def jose_key(value: Any) -> Key:
    """A joserfc key for a ``cryptography`` public or private key."""
    if isinstance(value, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return RSAKey.import_key(value)
    if isinstance(value, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return ECKey.import_key(value)
    if isinstance(value, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return OKPKey.import_key(value)
    raise ValueError(f"unsupported key type {type(value).__name__}")


def key_ids(public: Any) -> list[str]:
    """The IDs a token's ``kid`` may use for this key: its RFC 7638 thumbprint, and the
    libtrust key ID that Distribution 2.x and the token servers written for it use."""
    ids = [jose_key(public).thumbprint()]
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    ids.append(":".join(encoded[i : i + 4] for i in range(0, 48, 4)))
    return ids


def load_signing_key(path: str) -> SigningKey:
    """A PEM private key (RSA, EC P-256/384/521 or Ed25519) for the token service."""
    with open(path, "rb") as stream:
        data = stream.read()
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise ValueError(f"{path}: an RSA key needs at least 2048 bits")
        algorithm = "RS256"
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        found = _EC_ALGORITHMS.get(private.curve.name)
        if found is None:
            raise ValueError(f"{path}: unsupported curve {private.curve.name}")
        algorithm = found
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        algorithm = "EdDSA"
    else:
        raise ValueError(f"{path}: unsupported key type {type(private).__name__}")
    return SigningKey(jose_key(private), algorithm, key_ids(private.public_key())[0])


def secret_signing_key(secret: bytes) -> SigningKey:
    """An HS256 key, for a token service whose tokens only this registry verifies."""
    key = OctKey.import_key(secret)
    return SigningKey(key, "HS256", "wharf-" + hashlib.sha256(secret).hexdigest()[:16])


def load_root_certificates(path: str) -> list[x509.Certificate]:
    with open(path, "rb") as stream:
        data = stream.read()
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"{path}: not a PEM certificate bundle ({exc})") from None
    for certificate in certificates:
        if not isinstance(certificate.public_key(), PublicKey):
            raise ValueError(f"{path}: unsupported key type in {certificate.subject}")
    return certificates


def load_jwks(path: str) -> dict[str, Key]:
    """The public keys of a JWKS file, by key ID (Distribution looks keys up by ``kid``)."""
    with open(path, "rb") as stream:
        data = stream.read()
    try:
        document = json.loads(data)
        with warnings.catch_warnings():
            # joserfc warns about short symmetric keys; the file is the operator's choice.
            warnings.simplefilter("ignore")
            key_set = KeySet.import_key_set(document)
    except (ValueError, TypeError, KeyError, JoseError) as exc:
        raise ValueError(f"{path}: not a JSON Web Key Set ({exc})") from None
    keys: dict[str, Key] = {}
    for key in key_set.keys:
        if key.kid is None:
            raise ValueError(f"{path}: every key needs a kid")
        keys[key.kid] = key if isinstance(key, OctKey) else jose_key(key.public_key)
    return keys


def chain_key(x5c: object, roots: list[x509.Certificate]) -> Any:
    """The public key of an x5c chain's leaf, once the chain leads to one of ``roots``.

    As Distribution (Go's x509 with any key usage): the signature path and validity dates
    count, extensions other than the CA's basic constraints do not.
    """
    if not roots:
        raise ValueError("no root certificates configured")
    if not isinstance(x5c, list) or not x5c or len(x5c) > _MAX_CHAIN:
        raise ValueError("malformed x5c header")
    certificates: list[x509.Certificate] = []
    for item in x5c:
        if not isinstance(item, str):
            raise ValueError("malformed x5c header")
        try:
            certificates.append(x509.load_der_x509_certificate(base64.b64decode(item)))
        except (ValueError, binascii.Error) as exc:
            raise ValueError(f"malformed certificate in x5c: {exc}") from None
    ca_policy = ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, Criticality.AGNOSTIC, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .max_chain_depth(_MAX_CHAIN)
        .extension_policies(ca_policy=ca_policy, ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    try:
        verifier.verify(certificates[0], certificates[1:])
    except VerificationError as exc:
        raise ValueError(f"untrusted certificate chain: {exc}") from None
    return certificates[0].public_key()
