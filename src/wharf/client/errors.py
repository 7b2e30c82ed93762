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
        code = message = ""
        try:
            errors = json.loads(body if body is not None else response.content).get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                code = str(errors[0].get("code", ""))
                message = str(errors[0].get("message", ""))
        except (ValueError, AttributeError, httpx.ResponseNotRead):
            pass
        return cls(response.status_code, code, message, response.request.method, str(response.url))


class DigestMismatch(RegistryClientError):
    """Bytes received do not hash to the digest they were asked for."""
