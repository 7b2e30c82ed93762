"""Swift's native API over httpx (async): v1 authentication, retries, error translation.

Every request goes through :meth:`SwiftClient.request`, which authenticates on first use and
again when a token is refused (401), and retries transient failures (connection errors,
408, 429, 498, 5xx) with jittered exponential backoff: always for idempotent requests (GET,
HEAD, PUT of a whole object, DELETE, COPY), never for others (POST). A body is then sent
again whole: it is in memory, or a :class:`GrowingBody` (sent chunked as its pieces
arrive), which a retry sends again from its first piece. Pieces go out one by one, so that
no copy of a whole segment is made on its way to the socket. Errors leave as
:class:`SwiftError` (a DriverError carrying the HTTP status), so nothing of httpx crosses
the driver's boundary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from wharf.http_reads import use_large_reads
from wharf.storage.driver.base import DriverError
from wharf.storage.driver.retries import RetryPolicy
from wharf.storage.driver.swift.params import SwiftParameters

__all__ = ["GrowingBody", "RetryPolicy", "SwiftClient", "SwiftError"]

_RETRY_STATUS = frozenset({408, 429, 498, 500, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "COPY"})
_USER_AGENT = "wharf"


async def _pieces(content: tuple[bytes, ...]) -> AsyncIterator[bytes]:
    for piece in content:
        yield piece


class GrowingBody:
    """A body still being written: pieces are appended until ``end``; every sending of it
    starts from the first piece and waits for the next ones as they come."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0
        self.ended = False
        self._grown = asyncio.Event()

    def append(self, piece: bytes) -> None:
        self.pieces.append(piece)
        self.size += len(piece)
        self._grown.set()

    def end(self) -> None:
        self.ended = True
        self._grown.set()

    async def whole(self) -> tuple[bytes, ...]:
        """The pieces, once the body has ended."""
        while not self.ended:
            self._grown.clear()
            await self._grown.wait()
        return tuple(self.pieces)

    async def replay(self) -> AsyncIterator[bytes]:
        sent = 0
        while True:
            while sent < len(self.pieces):
                yield self.pieces[sent]
                sent += 1
            if self.ended:
                return
            self._grown.clear()
            await self._grown.wait()


class SwiftError(DriverError):
    """A request Swift refused or that never got an answer (``status`` 0)."""

    def __init__(self, message: str, *, status: int = 0, path: str = "") -> None:
        self.status = status
        super().__init__(message, path=path)


class SwiftClient:
    """One authenticated session with a Swift cluster (one per driver, shared by its
    requests)."""

    def __init__(
        self,
        params: SwiftParameters,
        *,
        retry: RetryPolicy | None = None,
        connections: int = 64,
        timeout: float = 60.0,
    ) -> None:
        self.params = params
        self.retry = retry or RetryPolicy()
        use_large_reads()
        self.http = httpx.AsyncClient(
            verify=not params.insecureskipverify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"User-Agent": _USER_AGENT},
            follow_redirects=False,
        )
        self.storage_url = ""
        self._token = ""
        self._auth_lock = asyncio.Lock()
        self._generation = 0  # of the token, so that one 401 re-authenticates once

    # -- authentication ---------------------------------------------------------------------

    async def authenticate(self, generation: int = -1) -> None:
        """Fetch a token (v1: ``X-Auth-User``/``X-Auth-Key``) unless another request did
        since ``generation``."""
        async with self._auth_lock:
            if generation != -1 and generation != self._generation:
                return
            headers = {"X-Auth-User": self.params.username, "X-Auth-Key": self.params.password}
            for attempt in range(self.retry.attempts):
                try:
                    response = await self.http.get(self.params.authurl, headers=headers)
                except httpx.HTTPError as exc:
                    if attempt + 1 >= self.retry.attempts:
                        raise SwiftError(f"authentication at {self.params.authurl}: {exc}") from exc
                    await asyncio.sleep(self.retry.delay(attempt))
                    continue
                if response.status_code in _RETRY_STATUS and attempt + 1 < self.retry.attempts:
                    await asyncio.sleep(self.retry.delay(attempt))
                    continue
                break
            if response.status_code // 100 != 2:
                raise SwiftError(
                    f"authentication at {self.params.authurl} failed: HTTP {response.status_code}",
                    status=response.status_code,
                )
            url = response.headers.get("X-Storage-Url", "")
            token = response.headers.get("X-Auth-Token") or response.headers.get(
                "X-Storage-Token", ""
            )
            if not url or not token:
                raise SwiftError(
                    f"authentication at {self.params.authurl}: no storage URL or token"
                )
            self.storage_url = url.rstrip("/")
            self._token = token
            self._generation += 1

    @property
    def account_path(self) -> str:
        """The path of the account in the storage URL (``/v1/AUTH_x``), as temp URLs sign it."""
        return httpx.URL(self.storage_url).path.rstrip("/")

    def object_url(self, container: str, name: str = "") -> str:
        if not container:
            return self.storage_url  # the account
        url = f"{self.storage_url}/{quote(container, safe='')}"
        return f"{url}/{quote(name, safe='/')}" if name else url

    # -- requests ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        container: str,
        name: str = "",
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | tuple[bytes, ...] | GrowingBody | None = None,
        ok: tuple[int, ...] = (),
        path: str = "",
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send a request, read its answer whole; SwiftError for a status outside 2xx and
        ``ok``. ``idempotent``: whether it may be sent again (by default, by its method)."""
        response = await self._send(
            method, container, name, params, headers, content, path, ok, idempotent=idempotent
        )
        return response

    async def stream(
        self,
        method: str,
        container: str,
        name: str,
        *,
        headers: Mapping[str, str] | None = None,
        path: str = "",
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """A response whose body is still to be read (``aiter_raw``) and closed."""
        return await self._send(method, container, name, None, headers, None, path, ok, stream=True)

    async def _send(
        self,
        method: str,
        container: str,
        name: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        content: bytes | tuple[bytes, ...] | GrowingBody | None,
        path: str,
        ok: tuple[int, ...],
        *,
        stream: bool = False,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        attempts = self.retry.attempts if idempotent else 1
        reauthenticated = False
        attempt = 0
        while True:
            if not self._token:
                await self.authenticate()
            generation = self._generation
            all_headers = {"X-Auth-Token": self._token, **(headers or {})}
            body: bytes | AsyncIterator[bytes] | None
            if isinstance(content, tuple):
                all_headers["Content-Length"] = str(sum(map(len, content)))
                body = _pieces(content)
            elif isinstance(content, GrowingBody):
                body = content.replay()
            else:
                body = content
            request = self.http.build_request(
                method,
                self.object_url(container, name),
                params=params,
                headers=all_headers,
                content=body,
            )
            try:
                response = await self.http.send(request, stream=True)
            except httpx.HTTPError as exc:
                attempt += 1
                if attempt >= attempts:
                    raise SwiftError(f"{method} {name or container}: {exc!r}", path=path) from exc
                await asyncio.sleep(self.retry.delay(attempt - 1))
                continue
            status = response.status_code
            if status == 401 and not reauthenticated:
                await response.aclose()
                reauthenticated = True
                await self.authenticate(generation)
                continue
            if status // 100 == 2 or status in ok:
                if not stream:
                    try:
                        await response.aread()
                    except httpx.HTTPError as exc:
                        await response.aclose()
                        attempt += 1
                        if attempt >= attempts:
                            raise SwiftError(
                                f"{method} {name or container}: {exc!r}", path=path
                            ) from exc
                        await asyncio.sleep(self.retry.delay(attempt - 1))
                        continue
                    await response.aclose()
                return response
            await response.aclose()
            attempt += 1
            if status in _RETRY_STATUS and attempt < attempts:
                await asyncio.sleep(self.retry.delay(attempt - 1))
                continue
            raise SwiftError(
                f"{method} {container}/{name}: HTTP {status} {response.reason_phrase}".rstrip(),
                status=status,
                path=path,
            )

    async def info(self) -> dict[str, Any]:
        """The cluster's capabilities (``/info``), empty when it does not answer them."""
        url = httpx.URL(self.storage_url or self.params.authurl)
        try:
            response = await self.http.get(str(url.copy_with(path="/info", query=None)))
            if response.status_code == 200:
                body = response.json()
                if isinstance(body, dict):
                    return body
        except (httpx.HTTPError, ValueError):
            pass
        return {}

    async def close(self) -> None:
        await self.http.aclose()
