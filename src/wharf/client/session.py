"""One registry's HTTP session: a kept-alive connection pool, the auth flows, redirects.

Every request names the scope it needs (``repository:<name>:pull`` or ``...:pull,push``);
the session sends what the registry's challenge asks for, answers one 401 by learning the
challenge, and follows redirects (a registry sends blob downloads to a CDN or presigned S3
URL), without the Authorization header once they leave the registry's host. Paths are built
by the callers from validated names, and relative to the configured base URL.
"""

from __future__ import annotations

import ssl
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

import httpx

from wharf import __version__
from wharf.client.auth import Authenticator
from wharf.client.credentials import Credentials
from wharf.client.download import (
    REDIRECT_STATUSES,
    REDIRECTS,
    Answer,
    Downloads,
    StreamedDownload,
    content_encoded,
)
from wharf.http_reads import use_large_reads

__all__ = ["Session", "catalog_scope", "repository_scope"]


class _Answer(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> httpx.Headers: ...

    async def aclose(self) -> None: ...


_Answered = TypeVar("_Answered", bound=_Answer)


def repository_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions or ('pull',))}"


def catalog_scope() -> str:
    return "registry:catalog:*"


class Session:
    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        verify: ssl.SSLContext | bool | str = True,
        timeout: float = 60.0,
        max_connections: int = 64,
        user_agent: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urllib.parse.urlsplit(self.base_url).netloc
        use_large_reads()
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": user_agent or f"wharf/{__version__}"},
            follow_redirects=False,
        )
        self.auth = Authenticator(self.http, self.host, credentials)
        # Only httpx goes through an HTTP proxy the environment names ("no" is NO_PROXY's
        # list of exceptions, not a proxy).
        proxies = set(urllib.request.getproxies_environment()) - {"no"}
        self._downloads = (
            None
            if proxies
            else Downloads(
                verify,
                timeout=timeout,
                threads=max_connections,
                user_agent=user_agent or f"wharf/{__version__}",
            )
        )

    async def aclose(self) -> None:
        await self.http.aclose()
        if self._downloads is not None:
            self._downloads.close()

    async def send(
        self,
        method: str,
        path: str,
        scope: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """The registry's answer (streamed: the caller closes it), authenticated for ``scope``.
        A body given as an iterator cannot be sent twice, so such a request learns the
        challenge first (a HEAD of ``/v2/``) when none is known yet."""
        if content is not None and not isinstance(content, bytes):
            await self._learn(scope)
        return await self._authenticated(
            scope,
            lambda credentials: self._follow(
                method, path, {**(headers or {}), **credentials}, params, content, stream
            ),
        )

    async def _authenticated(
        self, scope: str, send: Callable[[dict[str, str]], Awaitable[_Answered]]
    ) -> _Answered:
        """``send`` with what the known challenge asks for; once more when it answers 401
        with a challenge that brings new credentials."""
        for attempt in range(2):
            credentials = await self.auth.headers(scope)
            answer = await send(credentials)
            if answer.status_code != 401 or attempt:
                return answer
            challenge = answer.headers.get("www-authenticate")
            if not await self.auth.challenged(challenge, scope, sent=bool(credentials)):
                return answer
            await answer.aclose()
        return answer  # pragma: no cover - the loop returns

    async def download(
        self, path: str, scope: str, *, headers: Mapping[str, str] | None = None
    ) -> Answer:
        """A GET of a large body (a blob), authenticated for ``scope`` as ``send`` does, its
        body read in threads (``wharf.client.download``); the caller closes the answer.
        Raises DownloadFailed when the registry cannot be reached."""
        # Asked for as it is stored: decoding costs, and a CDN that encodes it anyway is
        # read through httpx, which decodes.
        headers = {**(headers or {}), "Accept-Encoding": "identity"}
        downloads = self._downloads
        if downloads is not None:
            url = self.base_url + path
            answer: Answer = await self._authenticated(
                scope, lambda credentials: downloads.get(url, {**headers, **credentials})
            )
            if not content_encoded(answer.headers):
                return answer
            await answer.aclose()
        return StreamedDownload(await self.send("GET", path, scope, headers=headers, stream=True))

    async def _learn(self, scope: str) -> None:
        if await self.auth.headers(scope):
            return
        response = await self.http.get("/v2/")
        if response.status_code == 401:
            challenge = response.headers.get("www-authenticate")
            await self.auth.challenged(challenge, scope, sent=False)

    async def _follow(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        params: Mapping[str, str] | None,
        content: bytes | AsyncIterator[bytes] | None,
        stream: bool,
    ) -> httpx.Response:
        url = httpx.URL(path, params=params) if params else httpx.URL(path)
        for _ in range(REDIRECTS + 1):
            request = self.http.build_request(method, url, headers=headers, content=content)
            response = await self.http.send(request, stream=stream)
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            if method not in ("GET", "HEAD"):
                return response  # an upload's Location is the caller's to follow
            await response.aclose()
            target = response.url.join(location)
            if target.host != response.url.host or target.scheme != response.url.scheme:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target
        raise httpx.TooManyRedirects("too many redirects", request=request)
