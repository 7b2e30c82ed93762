"""The ``Authorization`` header: Basic credentials and Bearer tokens."""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Mapping

__all__ = ["MAX_AUTHORIZATION", "authorization", "basic_credentials", "bearer_token"]

#: Longest Authorization header read; a token with a certificate chain fits several times.
MAX_AUTHORIZATION = 16384


def authorization(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The scheme (lower case) and its parameter, or None when there is no usable header."""
    value = headers.get("authorization")
    if not value or len(value) > MAX_AUTHORIZATION:
        return None
    scheme, _, parameter = value.strip().partition(" ")
    return scheme.lower(), parameter.strip()


def basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """User and password from ``Authorization: Basic``; None when absent or malformed."""
    found = authorization(headers)
    if found is None or found[0] != "basic":
        return None
    try:
        decoded = b64decode(found[1], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon or not user:
        return None
    return user, password


def bearer_token(headers: Mapping[str, str]) -> str | None:
    found = authorization(headers)
    if found is None or found[0] != "bearer" or not found[1]:
        return None
    return found[1]
