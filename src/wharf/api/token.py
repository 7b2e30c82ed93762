"""``/token``: the built-in token service over HTTP.

``GET`` follows the Docker token specification (``service``, repeated ``scope``,
``account``, ``offline_token``; Basic credentials or none) and answers
``{token, access_token, expires_in, issued_at}``. ``POST`` is the OAuth2 form Docker clients
use with stored identity tokens (``grant_type=password`` or ``refresh_token``, ``scope``
separated by spaces, ``access_type=offline`` for a refresh token). Errors use OAuth2's
``{error, error_description}``; a 401 carries a Basic challenge.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from wharf.api.context import AppContext
from wharf.api.http import Request, Response
from wharf.auth.token_service import IssuedToken, TokenRequestError, TokenService
from wharf.errors import Unsupported

__all__ = ["token_route"]

ExtraRoute = Callable[[AppContext, Request], Awaitable[Response]]

#: Largest OAuth2 form accepted: credentials, a refresh token and a few scopes.
_FORM_LIMIT = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def token_route(service: TokenService) -> ExtraRoute:
    async def handle(_ctx: AppContext, request: Request) -> Response:
        try:
            if request.method == "GET":
                return await _get(service, request)
            if request.method == "POST":
                return await _post(service, request)
        except TokenRequestError as error:
            return _error(service, error)
        raise Unsupported({"method": request.method}, message="method not allowed")

    return handle


async def _get(service: TokenService, request: Request) -> Response:
    await request.drain()
    try:
        query = request.query
    except ValueError:
        raise TokenRequestError("invalid_request", "too many parameters") from None
    user = await service.basic_user(request.headers)
    issued = await service.issue(
        user,
        query.get("scope", []),
        service=_last(query, "service"),
        offline=_last(query, "offline_token") == "true",
    )
    body: dict[str, Any] = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    }
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    return _json(200, body)


async def _post(service: TokenService, request: Request) -> Response:
    content_type = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        await request.drain()
        raise TokenRequestError("invalid_request", "expected a form (x-www-form-urlencoded)")
    raw = await request.body(_FORM_LIMIT)
    try:
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise TokenRequestError("invalid_request", "malformed form") from None
    scopes = form.get("scope", [])
    target = _last(form, "service")
    grant = _last(form, "grant_type")
    if grant == "password":
        user, password = _last(form, "username"), _last(form, "password")
        if not user or password is None:
            raise TokenRequestError("invalid_request", "username and password are required")
        issued = await service.password_grant(
            user, password, scopes, service=target, offline=_last(form, "access_type") == "offline"
        )
    elif grant == "refresh_token":
        refresh = _last(form, "refresh_token")
        if not refresh:
            raise TokenRequestError("invalid_request", "refresh_token is required")
        issued = await service.refresh_grant(refresh, scopes, service=target)
    else:
        raise TokenRequestError(
            "unsupported_grant_type", "grant_type must be password or refresh_token"
        )
    return _json(200, _oauth_body(issued))


def _oauth_body(issued: IssuedToken) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
        "scope": issued.scope,
    }
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    return body


def _last(values: dict[str, list[str]], name: str) -> str | None:
    found = values.get(name)
    return found[-1] if found else None


def _error(service: TokenService, error: TokenRequestError) -> Response:
    headers = {"WWW-Authenticate": service.challenge} if error.status == 401 else {}
    body = {"error": error.error, "error_description": error.description}
    return _json(error.status, body, headers)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    return Response(
        status, data, {"Content-Type": "application/json", **_NO_STORE, **(headers or {})}
    )
