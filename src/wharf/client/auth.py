"""The registry auth flows, as Docker's client speaks them.

A registry that answers 401 names in ``WWW-Authenticate`` either Basic or a Bearer realm (a
token service) with its ``service``. A token for a scope (``repository:<name>:pull``) is asked
of the realm: with a refresh token (an identity token) as an OAuth2 ``refresh_token`` grant
(POST), with a username and password in Basic (GET, Docker's token protocol), or anonymously.
Tokens are kept until they expire, per scope, and one fetch serves every request waiting for
the same scope. Once a challenge is known, every request carries what it asks for at once, so
a client does not pay a 401 per request.

Credentials go only to the registry and to its realm, never into logs (see ``credentials``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import urllib.parse
from dataclasses import dataclass

import httpx

from wharf.client.credentials import Credentials, Login

__all__ = ["Authenticator", "Challenge", "parse_challenge"]

log = logging.getLogger("wharf.client")

_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
#: Seconds a token lives when its issuer does not say (Docker's token spec: 60).
_DEFAULT_TOKEN_LIFE = 60.0
#: A token is renewed this long before it expires, so that it does not expire in flight.
_MARGIN = 5.0
_CLIENT_ID = "wharf"


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    realm: str = ""
    service: str = ""


def parse_challenge(header: str) -> Challenge | None:
    """The first Basic or Bearer challenge of a ``WWW-Authenticate`` value."""
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("basic", "bearer"):
        return None
    params = {
        match[1].lower(): match[2] if match[2] is not None else match[3]
        for match in _PARAM_RE.finditer(rest)
    }
    if scheme == "bearer":
        realm = params.get("realm", "")
        if urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            return None
        return Challenge("bearer", realm, params.get("service", ""))
    return Challenge("basic")


class Authenticator:
    """What to send one registry (``host``) for a scope, and how to learn it."""

    def __init__(
        self, http: httpx.AsyncClient, host: str, credentials: Credentials | None = None
    ) -> None:
        self._http = http
        self._host = host
        self._credentials = credentials
        self._challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._fetching: dict[str, asyncio.Future[str]] = {}

    async def headers(self, scope: str) -> dict[str, str]:
        """The Authorization header for a request in ``scope`` (none before a challenge)."""
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            login = await self._login()
            if login is None or not login.username:
                return {}
            return {"Authorization": _basic(login.username, login.password)}
        return {"Authorization": f"Bearer {await self._token(challenge, scope)}"}

    async def challenged(self, header: str | None, scope: str, *, sent: bool) -> bool:
        """After a 401 to a request that ``sent`` credentials or not: learn its challenge and
        forget the token refused; whether a retry may succeed."""
        challenge = parse_challenge(header or "")
        if challenge is None:
            return False
        self._tokens.pop(scope, None)
        changed = challenge != self._challenge
        self._challenge = challenge
        # A refused token is worth one new one; refused Basic credentials are final.
        return not sent or changed or challenge.scheme == "bearer"

    async def _login(self) -> Login | None:
        if self._credentials is None:
            return None
        return await self._credentials.login(self._host)

    async def _token(self, challenge: Challenge, scope: str) -> str:
        held = self._tokens.get(scope)
        if held is not None and held[1] > time.monotonic():
            return held[0]
        pending = self._fetching.get(scope)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch_token(challenge, scope))
            self._fetching[scope] = pending
            pending.add_done_callback(lambda _: self._fetching.pop(scope, None))
        return await asyncio.shield(pending)

    async def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        login = await self._login()
        if login is not None and login.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": login.identity_token,
                "service": challenge.service,
                "scope": scope,
                "client_id": _CLIENT_ID,
            }
            response = await self._http.post(challenge.realm, data=form)
        else:
            # One scope parameter per scope, as Docker's token protocol has it.
            params: list[tuple[str, str | int | float | bool | None]] = [
                ("scope", one) for one in scope.split()
            ]
            if challenge.service:
                params.append(("service", challenge.service))
            headers = {}
            if login is not None and login.username:
                headers["Authorization"] = _basic(login.username, login.password)
            response = await self._http.get(challenge.realm, params=params, headers=headers)
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"the token service answered {response.status_code}",
                request=response.request,
                response=response,
            )
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise httpx.DecodingError("the token service sent no token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = _DEFAULT_TOKEN_LIFE
        expires = time.monotonic() + max(float(lifetime) - _MARGIN, 1.0)
        self._tokens[scope] = (token, expires)
        return token


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
