"""The built-in token service (``auth.tokenservice``), which Distribution does not have.

It issues the tokens that ``auth.token`` verifies, so that a secured registry needs nothing
else running::

    auth:
      token:
        realm: https://registry.example.com/token
        service: registry.example.com
        issuer: wharf
      tokenservice:
        users: /etc/wharf/htpasswd     # bcrypt entries (htpasswd -B)
        key: /etc/wharf/token-key.pem  # optional; default: HS256 derived from http.secret
        expiration: 5m                 # access tokens
        refreshexpiration: 168h        # refresh tokens (OAuth2 access_type=offline)
        path: /token                   # where it answers, under http.prefix
        access: [...]                  # rules, see wharf.auth.rules

A caller authenticates with Basic credentials (``GET``) or an OAuth2 password or refresh
grant (``POST``), or not at all (anonymous); the token grants the intersection of the scopes
asked for and what the rules allow, never an error for a scope that is not allowed (the
Docker token specification: the registry then answers ``insufficient_scope``).

Refresh tokens are signed like access tokens but for another audience, so the registry
refuses them as access tokens; they stop working when their user leaves the password file
or changes password.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from joserfc import jws, jwt
from joserfc.jwk import Key

from wharf.auth.base import Access
from wharf.auth.challenge import quote
from wharf.auth.credentials import authorization, basic_credentials
from wharf.auth.htpasswd import HtpasswdFile
from wharf.auth.keys import SigningKey, load_signing_key, secret_signing_key
from wharf.auth.options import Options
from wharf.auth.rules import ACTIONS, AccessRules
from wharf.auth.scopes import format_scopes, parse_scopes
from wharf.auth.token import InvalidToken, TokenVerifier
from wharf.errors import RegistryError
from wharf.reference import RepositoryName

__all__ = ["IssuedToken", "TokenRequestError", "TokenService"]

_ACTION_ORDER = {action: index for index, action in enumerate((*ACTIONS, "*"))}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str  # RFC 3339
    scope: str
    refresh_token: str | None = None


class TokenRequestError(Exception):
    """A request the service refuses, with its OAuth2 error code and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class TokenService:
    def __init__(
        self,
        *,
        service: str,
        issuer: str,
        signing_key: SigningKey,
        rules: AccessRules,
        users: HtpasswdFile | None = None,
        expiration: timedelta = timedelta(minutes=5),
        refresh_expiration: timedelta = timedelta(days=7),
        path: str = "/token",
    ) -> None:
        self.service = service
        self.issuer = issuer
        self.signing_key = signing_key
        self.rules = rules
        self.users = users
        self.expiration = int(expiration.total_seconds())
        self.refresh_expiration = int(refresh_expiration.total_seconds())
        self.path = path
        self.challenge = f"Basic realm={quote(service)}"
        self._refresh_verifier = TokenVerifier(
            issuer=issuer,
            service=self._refresh_audience,
            algorithms=[signing_key.algorithm],
            trusted=self.trusted_keys(),
        )

    @classmethod
    def from_options(
        cls, options: Options, *, service: str, issuer: str, secret: str
    ) -> TokenService:
        users_path = options.file("users", required=False)
        key_path = options.file("key", required=False)
        if key_path:
            try:
                signing_key = load_signing_key(key_path)
            except (OSError, ValueError) as exc:
                raise options.error("key", str(exc)) from None
        elif secret:
            # Workers share http.secret (or the one the launcher generated for them), so
            # they all derive the same key; the label keeps it apart from upload signatures.
            derived = hmac.new(secret.encode(), b"wharf token service signing key", "sha256")
            signing_key = secret_signing_key(derived.digest())
        else:
            raise options.error("key", "required when http.secret is empty")
        path = options.string("path", "/token")
        if not path.startswith("/") or path.startswith("/v2/") or path in ("/v2", "/"):
            raise options.error("path", f"must be a path outside /v2/, got {path!r}")
        try:
            users = HtpasswdFile(users_path) if users_path else None
        except ValueError as exc:
            raise options.error("users", str(exc)) from None
        service_ = cls(
            service=service,
            issuer=issuer,
            signing_key=signing_key,
            rules=AccessRules.from_config(f"{options.path}.access", options.get("access")),
            users=users,
            expiration=options.duration("expiration", timedelta(minutes=5)),
            refresh_expiration=options.duration("refreshexpiration", timedelta(days=7)),
            path=path,
        )
        options.finish()
        return service_

    @property
    def _refresh_audience(self) -> str:
        return f"{self.service}#refresh"

    def trusted_keys(self) -> dict[str, Key]:
        """What the resource server must trust to accept this service's tokens."""
        return {self.signing_key.kid: self.signing_key.public()}

    # --- authentication ------------------------------------------------------------------

    async def basic_user(self, headers: Mapping[str, str]) -> str | None:
        """The user of the request's Basic credentials; None when it has none."""
        if authorization(headers) is None:
            return None
        credentials = basic_credentials(headers)
        if credentials is None:
            raise TokenRequestError("invalid_client", "malformed credentials", 401)
        return await self._login(*credentials)

    async def _login(self, user: str, password: str) -> str:
        if self.users is None or not await self.users.verify(user, password):
            raise TokenRequestError("invalid_grant", "invalid username or password", 401)
        return user

    # --- issuing -------------------------------------------------------------------------

    async def issue(
        self,
        user: str | None,
        scopes: Sequence[str],
        *,
        service: str | None = None,
        offline: bool = False,
    ) -> IssuedToken:
        """A token for ``user`` (None: anonymous) with what it may have of ``scopes``."""
        if service is not None and service != self.service:
            raise TokenRequestError("invalid_request", f"unknown service {service[:100]!r}")
        try:
            requested = parse_scopes(scopes)
        except ValueError as exc:
            raise TokenRequestError("invalid_scope", str(exc)) from None
        granted = self.rules.grant(user, [a for a in requested if _nameable(a)])
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.expiration,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": _access_claim(granted),
        }
        refresh = self._refresh_token(user, now) if offline and user is not None else None
        ordered = [access for access in requested if access in granted]
        return IssuedToken(
            self._sign(claims),
            self.expiration,
            datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            format_scopes(ordered),
            refresh,
        )

    async def password_grant(
        self,
        user: str,
        password: str,
        scopes: Sequence[str],
        *,
        service: str | None = None,
        offline: bool = False,
    ) -> IssuedToken:
        await self._login(user, password)
        return await self.issue(user, scopes, service=service, offline=offline)

    async def refresh_grant(
        self, refresh_token: str, scopes: Sequence[str], *, service: str | None = None
    ) -> IssuedToken:
        try:
            claims = self._refresh_verifier.verify(refresh_token)
            payload = json.loads(jws.extract_compact(refresh_token.encode("ascii")).payload)
        except (InvalidToken, ValueError):
            raise TokenRequestError("invalid_grant", "invalid refresh token") from None
        user = claims.subject
        if self.users is not None:
            await self.users.refresh()
        current = self.users.fingerprint(user) if self.users is not None else None
        if not user or current is None or payload.get("pwd") != current:
            raise TokenRequestError("invalid_grant", "refresh token revoked")
        issued = await self.issue(user, scopes, service=service)
        # The client keeps its refresh token; handing it back makes that explicit.
        return IssuedToken(
            issued.token, issued.expires_in, issued.issued_at, issued.scope, refresh_token
        )

    def _refresh_token(self, user: str, now: int) -> str:
        assert self.users is not None  # a user exists only with a password file
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self._refresh_audience,
            "exp": now + self.refresh_expiration,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "pwd": self.users.fingerprint(user),
        }
        return self._sign(claims)

    def _sign(self, claims: dict[str, object]) -> str:
        key = self.signing_key
        header = {"typ": "JWT", "alg": key.algorithm, "kid": key.kid}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc's deprecation warning for "EdDSA"
            return jwt.encode(header, claims, key.key, algorithms=[key.algorithm])


def _nameable(access: Access) -> bool:
    """Only scopes naming something wharf has can be granted."""
    if access.type == "registry":
        return access.name == "catalog"
    if access.type != "repository":
        return False
    try:
        RepositoryName(access.name)
    except RegistryError:
        return False
    return True


def _access_claim(granted: frozenset[Access]) -> list[dict[str, object]]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for access in granted:
        grouped.setdefault((access.type, access.name), []).append(access.action)
    return [
        {"type": kind, "name": name, "actions": sorted(actions, key=_ACTION_ORDER.__getitem__)}
        for (kind, name), actions in sorted(grouped.items())
    ]
