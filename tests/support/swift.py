"""OpenStack Swift's native API for the ``swift`` storage driver's tests: the Swift that
``s3servers.start_swift`` runs (with memcached, which tempauth keeps its tokens in), reached
the way Distribution's users reach Swift: through ``authurl`` (tempauth, ``/auth/v1.0``).

Import the fixture into a ``conftest.py``::

    from tests.support.swift import swift_native  # noqa: F401
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.s3servers import S3Server

__all__ = ["SwiftNative", "swift_native"]


@dataclass(frozen=True)
class SwiftNative:
    server: S3Server

    @property
    def auth_url(self) -> str:
        return self.server.auth_url

    @functools.cached_property
    def _session(self) -> tuple[str, str]:
        response = httpx.get(
            self.auth_url,
            headers={"X-Auth-User": self.server.access_key, "X-Auth-Key": self.server.secret_key},
        )
        response.raise_for_status()
        return response.headers["X-Storage-Url"], response.headers["X-Auth-Token"]

    @property
    def storage_url(self) -> str:
        return self._session[0]

    def request(self, method: str, path: str = "", **options: Any) -> httpx.Response:
        """A request to the account (``path``: ``/container/object``), authenticated."""
        url, token = self._session
        headers = {"X-Auth-Token": token, **options.pop("headers", {})}
        return httpx.request(method, url + quote(path), headers=headers, timeout=30, **options)

    def create_container(self) -> str:
        name = f"wharf-{uuid.uuid4().hex[:16]}"
        self.request("PUT", f"/{name}").raise_for_status()
        return name

    def names(self, container: str, prefix: str = "") -> list[str]:
        """Every object name in ``container`` (below ``prefix``)."""
        response = self.request("GET", f"/{container}", params={"format": "json", "prefix": prefix})
        response.raise_for_status()
        return [entry["name"] for entry in response.json()] if response.content else []

    def parameters(self, container: str, **extra: Any) -> dict[str, Any]:
        """``storage: swift:`` parameters for ``container`` on this Swift."""
        return {
            "authurl": self.auth_url,
            "username": self.server.access_key,
            "password": self.server.secret_key,
            "container": container,
            **extra,
        }

    def fresh_parameters(self, **extra: Any) -> dict[str, Any]:
        """Parameters on a new container, made here (the driver would create it too)."""
        return self.parameters(self.create_container(), **extra)


@pytest.fixture(scope="session")
def swift_native(swift_server: S3Server) -> SwiftNative:
    if not swift_server.auth_url:
        pytest.skip("Swift's native API needs memcached (apt install memcached)")
    return SwiftNative(swift_server)
