"""What a registry client raises."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

__all__ = ["DigestMismatch", "RegistryClientError", "ResponseError"]


class RegistryClientError(Exception):
    """Base of everything the client raises (besides httpx's transport errors)."""


@dataclass
class ResponseError(RegistryClientError):
    """A registry answered with an error: its status and the spec's error code and message."""

    status: int
    code: str = ""
    message: str = ""
    method: str = ""
    url: str = ""

    def __str__(self) -> str:
        what = f"{self.code}: {self.message}" if self.code else f"status {self.status}"
        return f"{self.method} {self.url}: {what}".strip()

    @classmethod
    def of(cls, response: httpx.Response, body: bytes | None = None) -> ResponseError:
        try:
            content = body if body is not None else response.content
        except httpx.ResponseNotRead:
            content = b""
        return cls.read(response.status_code, content, response.request.method, str(response.url))

    @classmethod
    def read(cls, status: int, body: bytes, method: str, url: str) -> ResponseError:
        """The error an answer's body names, when it names one as the spec says."""
        code = message = ""
        try:
            errors = json.loads(body).get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                code = str(errors[0].get("code", ""))
                message = str(errors[0].get("message", ""))
        except (ValueError, AttributeError):
            pass
        return cls(status, code, message, method, url)


class DigestMismatch(RegistryClientError):
    """Bytes received do not hash to the digest they were asked for."""
