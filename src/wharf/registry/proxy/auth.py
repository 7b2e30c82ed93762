"""Credentials for an upstream registry: the challenge it answers with, the tokens it issues.

The registry auth flows as Docker's client speaks them: an upstream that answers 401 names in
``WWW-Authenticate`` either Basic or a Bearer realm (a token service) with its ``service``;
a token for a repository's pull scope is asked of the realm (with the mirror's credentials in
Basic, or anonymously) and kept until it expires, per scope. Once a challenge is known, every
request carries what it asks for at once, so a mirror does not pay a 401 per request.

Credentials are the mirror's ``username``/``password``, or what its credential helper says
(Distribution 3's ``proxy.exec``: ``<command> get`` with the upstream's host on standard
input answers ``{"Username": ..., "Secret": ...}``), asked again after ``lifetime``. They are
sent only to the upstream and its realm, never logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import urllib.parse
from dataclasses import dataclass

import httpx

from wharf.config.mirrors import CredentialHelper, MirrorConfig

__all__ = ["Challenge", "UpstreamAuth", "parse_challenge"]

log = logging.getLogger("wharf.proxy")

_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
#: Seconds a token lives when its issuer does not say (Docker's token spec: 60).
_DEFAULT_TOKEN_LIFE = 60.0
#: A token is renewed this long before it expires, so that it does not expire in flight.
_MARGIN = 5.0
_HELPER_TIMEOUT = 30.0


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


class UpstreamAuth:
    """What to send the upstream for a scope, and how to learn it."""

    def __init__(self, mirror: MirrorConfig, http: httpx.AsyncClient) -> None:
        self._mirror = mirror
        self._http = http
        self._challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._fetching: dict[str, asyncio.Future[str]] = {}
        self._helper: tuple[str, str, float] | None = None

    async def headers(self, scope: str) -> dict[str, str]:
        """The Authorization header for a request in ``scope`` (none before a challenge)."""
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            credentials = await self._credentials()
            return {"Authorization": _basic(*credentials)} if credentials else {}
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
        params = {"scope": scope}
        if challenge.service:
            params["service"] = challenge.service
        headers = {}
        credentials = await self._credentials()
        if credentials:
            headers["Authorization"] = _basic(*credentials)
        response = await self._http.get(challenge.realm, params=params, headers=headers)
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"the upstream's token service answered {response.status_code}",
                request=response.request,
                response=response,
            )
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise httpx.DecodingError("the upstream's token service sent no token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = _DEFAULT_TOKEN_LIFE
        expires = time.monotonic() + max(float(lifetime) - _MARGIN, 1.0)
        self._tokens[scope] = (token, expires)
        return token

    async def _credentials(self) -> tuple[str, str] | None:
        mirror = self._mirror
        if mirror.credential_helper is not None:
            return await self._from_helper(mirror.credential_helper)
        if mirror.username:
            return mirror.username, mirror.password
        return None

    async def _from_helper(self, helper: CredentialHelper) -> tuple[str, str]:
        held = self._helper
        if held is not None and held[2] > time.monotonic():
            return held[0], held[1]
        host = urllib.parse.urlsplit(self._mirror.url).netloc
        process = await asyncio.create_subprocess_exec(
            helper.command,
            "get",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(host.encode()), _HELPER_TIMEOUT)
        except TimeoutError:
            process.kill()
            raise RuntimeError(f"credential helper {helper.command} did not answer") from None
        if process.returncode != 0:
            raise RuntimeError(f"credential helper {helper.command} failed")
        answer = json.loads(output)
        username, secret = str(answer.get("Username", "")), str(answer.get("Secret", ""))
        lifetime = helper.lifetime.total_seconds() if helper.lifetime else float("inf")
        self._helper = (username, secret, time.monotonic() + lifetime)
        return username, secret


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
