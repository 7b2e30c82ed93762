"""``auth.token``: wharf as a resource server of the Docker token specification.

Options, as Distribution's: ``realm`` (the token service's URL), ``service`` (the audience
tokens must carry), ``issuer`` (their ``iss``), ``rootcertbundle`` (PEM certificates) and/or
``jwks`` (a JSON Web Key Set file), ``signingalgorithms`` (default: Distribution's list).
``autoredirect`` is refused: it builds the realm from the request's Host header, which lets a
caller choose where clients send their credentials.

A token's signing key is found as Distribution finds it, in this order: an ``x5c`` chain that
leads to a root certificate; a ``jwk`` header (with its own ``x5c`` chain, or naming a trusted
key by ``kid``); a ``kid`` naming a trusted key (a JWKS key, or a root certificate's key by
RFC 7638 thumbprint or libtrust key ID). ``jku`` and ``x5u`` are never fetched. Then the
signature, ``iss``, ``aud`` (a string or a list), ``exp`` and ``nbf`` (60 s leeway) are checked,
and the ``access`` claim is what the caller may do; ``*`` allows every action.

A missing or unusable token is answered as Distribution does: 401 with a challenge naming
the scope needed, and ``error="invalid_token"`` or ``error="insufficient_scope"``.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key

from wharf.auth.base import Access, Identity
from wharf.auth.challenge import quote, unauthorized
from wharf.auth.credentials import MAX_AUTHORIZATION, bearer_token
from wharf.auth.keys import (
    KEY_TYPES,
    chain_key,
    jose_key,
    key_ids,
    load_jwks,
    load_root_certificates,
)
from wharf.auth.options import Options
from wharf.auth.scopes import format_scopes

__all__ = [
    "DEFAULT_ALGORITHMS",
    "LEEWAY",
    "Claims",
    "InvalidToken",
    "TokenController",
    "TokenVerifier",
]

DEFAULT_ALGORITHMS = (
    "EdDSA",
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
)
#: Clock skew allowed on ``exp`` and ``nbf``, as Distribution's.
LEEWAY = 60.0
_CACHE_SIZE = 4096


_REGISTRIES: dict[str | None, jws.JWSRegistry] = {}


def _registry(algorithm: str | None = None) -> jws.JWSRegistry:
    """joserfc's checks, allowing only ``algorithm`` (None: for parsing only)."""
    registry = _REGISTRIES.get(algorithm)
    if registry is None:
        algorithms = None if algorithm is None else [algorithm]
        registry = jws.JWSRegistry(algorithms=algorithms, strict_check_header=False)
        # joserfc's default of 512 bytes is too small for a header with a certificate chain.
        registry.max_header_length = MAX_AUTHORIZATION
        _REGISTRIES[algorithm] = registry
    return registry


class InvalidToken(Exception):
    """A token that is malformed, not signed by a trusted key, expired, or not for us."""


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    granted: frozenset[Access]
    expires: float
    not_before: float

    def allows(self, access: Access) -> bool:
        return access in self.granted or Access(access.type, access.name, "*") in self.granted


class TokenVerifier:
    """Checks tokens against the trusted keys and returns their claims."""

    def __init__(
        self,
        *,
        issuer: str,
        service: str,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        roots: Sequence[x509.Certificate] = (),
        trusted: Mapping[str, Key] | None = None,
    ) -> None:
        self.issuer = issuer
        self.service = service
        self.algorithms = frozenset(algorithms)
        self.roots = list(roots)
        self.trusted: dict[str, Key] = {}
        for root in self.roots:
            for kid in key_ids(root.public_key()):
                self.trusted[kid] = jose_key(root.public_key())
        self.trusted.update(trusted or {})
        # Verified tokens by digest: a token is immutable, so only the clock needs checking
        # again, and pulls then pay for one signature check per token instead of per blob.
        self._cache: dict[bytes, Claims] = {}

    def verify(self, raw: str, now: float | None = None) -> Claims:
        now = time.time() if now is None else now
        digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()
        claims = self._cache.get(digest)
        if claims is None:
            claims = self._verify(raw)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[digest] = claims
        if now > claims.expires + LEEWAY:
            raise InvalidToken("token expired")
        if now < claims.not_before - LEEWAY:
            raise InvalidToken("token not valid yet")
        return claims

    def _verify(self, raw: str) -> Claims:
        if len(raw) > MAX_AUTHORIZATION:
            raise InvalidToken("token too long")
        try:
            value = raw.encode("ascii")
            header = jws.extract_compact(value, registry=_registry()).headers()
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise InvalidToken(f"algorithm {str(algorithm)[:20]!r} not accepted")
        key = self._signing_key(header)
        if KEY_TYPES.get(algorithm[:2]) != key.key_type:
            raise InvalidToken(f"{algorithm} cannot be verified with a {key.key_type} key")
        try:
            with warnings.catch_warnings():
                # joserfc warns that "EdDSA" is deprecated in favour of "Ed25519"; issuers
                # written for Distribution still use it.
                warnings.simplefilter("ignore")
                signed = jws.deserialize_compact(value, key, registry=_registry(algorithm))
                payload = signed.payload
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken(f"bad signature: {exc}") from None
        try:
            claims = json.loads(payload)
        except ValueError:
            raise InvalidToken("claims are not JSON") from None
        if not isinstance(claims, dict):
            raise InvalidToken("claims are not a JSON object")
        return self._claims(claims)

    def _signing_key(self, header: Mapping[str, Any]) -> Key:
        try:
            if "x5c" in header:
                return jose_key(chain_key(header["x5c"], self.roots))
            jwk = header.get("jwk")
            if jwk is not None:
                if not isinstance(jwk, dict):
                    raise InvalidToken("malformed jwk header")
                if "x5c" in jwk:
                    return jose_key(chain_key(jwk["x5c"], self.roots))
                # A key that comes with the token proves nothing: only its kid is used.
                return self._trusted(jwk.get("kid"))
            if "kid" in header:
                return self._trusted(header["kid"])
        except ValueError as exc:
            raise InvalidToken(str(exc)) from None
        raise InvalidToken("no x5c, jwk or kid header to find the signing key")

    def _trusted(self, kid: object) -> Key:
        key = self.trusted.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken(f"token signed by untrusted key {str(kid)[:80]!r}")
        return key

    def _claims(self, claims: dict[str, Any]) -> Claims:
        if claims.get("iss") != self.issuer:
            raise InvalidToken("token from another issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.service not in audiences:
            raise InvalidToken("token for another audience")
        subject = claims.get("sub", "")
        if not isinstance(subject, str):
            raise InvalidToken("malformed sub claim")
        return Claims(
            subject,
            _granted(claims.get("access")),
            _number(claims, "exp"),
            _number(claims, "nbf"),
        )


def _number(claims: Mapping[str, Any], name: str) -> float:
    # A missing time is 0, as in Distribution: no exp means expired, no nbf means valid.
    value = claims.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"malformed {name} claim")
    return float(value)


def _granted(access: object) -> frozenset[Access]:
    if access is None:
        return frozenset()
    if not isinstance(access, list):
        raise InvalidToken("malformed access claim")
    granted: set[Access] = set()
    for entry in access:
        if not isinstance(entry, dict):
            raise InvalidToken("malformed access claim")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(kind, str) or not isinstance(name, str):
            raise InvalidToken("malformed access claim")
        if actions is None:
            actions = []
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise InvalidToken("malformed access claim")
        granted.update(Access(kind, name, action) for action in actions)
    return frozenset(granted)


class TokenController:
    """Bearer tokens on every request; see the module docstring."""

    def __init__(self, realm: str, service: str, verifier: TokenVerifier) -> None:
        self.realm = realm
        self.service = service
        self.verifier = verifier
        self._prefix = f"Bearer realm={quote(realm)},service={quote(service)}"

    @classmethod
    def from_options(
        cls, options: Options, extra_keys: Mapping[str, Key] | None = None
    ) -> TokenController:
        """Read ``auth.token``; ``extra_keys`` are trusted too (the built-in service's)."""
        realm = options.string("realm")
        parsed = urllib.parse.urlsplit(realm)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise options.error("realm", f"must be an absolute http(s) URL, got {realm!r}")
        service = options.string("service")
        issuer = options.string("issuer")
        if options.boolean("autoredirect", False):
            raise options.error(
                "autoredirect",
                "not supported: it takes the realm from the request's Host header; set realm",
            )
        options.get("autoredirectpath")  # meaningful only with autoredirect
        algorithms = options.strings("signingalgorithms") or DEFAULT_ALGORITHMS
        unknown = sorted(set(algorithms) - set(DEFAULT_ALGORITHMS))
        if unknown:
            raise options.error("signingalgorithms", f"unsupported {', '.join(unknown)}")
        roots: list[x509.Certificate] = []
        trusted: dict[str, Key] = {}
        bundle = options.file("rootcertbundle", required=False)
        jwks = options.file("jwks", required=False)
        try:
            if bundle:
                roots = load_root_certificates(bundle)
            if jwks:
                trusted = load_jwks(jwks)
        except (OSError, ValueError) as exc:
            name = "rootcertbundle" if bundle and not roots else "jwks"
            raise options.error(name, str(exc)) from None
        trusted.update(extra_keys or {})
        if not roots and not trusted:
            raise options.error(
                "rootcertbundle", "token auth needs at least one signing key (or jwks)"
            )
        options.finish()
        verifier = TokenVerifier(
            issuer=issuer, service=service, algorithms=algorithms, roots=roots, trusted=trusted
        )
        return cls(realm, service, verifier)

    def challenge(self, accesses: Sequence[Access], error: str | None = None) -> str:
        text = self._prefix
        if accesses:
            text += f",scope={quote(format_scopes(accesses))}"
        if error:
            text += f",error={quote(error)}"
        return text

    async def authorize(self, headers: Mapping[str, str], accesses: Sequence[Access]) -> Identity:
        raw = bearer_token(headers)
        if raw is None:
            raise unauthorized(self.challenge(accesses), accesses)
        try:
            claims = self.verifier.verify(raw)
        except InvalidToken:
            raise unauthorized(self.challenge(accesses, "invalid_token"), accesses) from None
        if not all(claims.allows(access) for access in accesses):
            # Distribution answers 401, not 403: the client may ask for a wider token.
            raise unauthorized(self.challenge(accesses, "insufficient_scope"), accesses)
        return Identity(claims.subject, claims.granted)
