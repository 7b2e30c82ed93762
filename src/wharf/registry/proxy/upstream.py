"""One upstream registry, as the pull-through cache asks it: manifests, blobs, tags.

The URL of every request is built from the mirror's configured base URL and from validated
names (a repository name, a tag, a digest): nothing in a client's request chooses a host. The
upstream's own redirects (Docker Hub sends blob downloads to a CDN) are followed, without the
Authorization header once they leave the upstream's host. One connection pool per upstream,
kept alive between requests.

Failures leave as registry errors a client understands: what the upstream does not have, or
will not give this mirror, is unknown (Docker Hub answers 401 for repositories that do not
exist); 429 is passed on as TOOMANYREQUESTS with its Retry-After; 5xx, timeouts and dropped
connections are UNAVAILABLE. Never a 500.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import NoReturn

import httpx

from wharf import __version__
from wharf.config.mirrors import MirrorConfig
from wharf.errors import (
    BlobUnknown,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    TooManyRequests,
    Unavailable,
)
from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry import media
from wharf.registry.proxy.auth import UpstreamAuth

__all__ = ["MANIFEST_ACCEPT", "FetchedManifest", "Upstream", "UpstreamBlob"]

log = logging.getLogger("wharf.proxy")

#: Every manifest type a registry may hold, so the upstream sends its stored bytes as they are.
MANIFEST_ACCEPT = ", ".join(
    (
        media.OCI_INDEX,
        media.OCI_MANIFEST,
        media.DOCKER_MANIFEST_LIST,
        media.DOCKER_MANIFEST,
        media.DOCKER_SCHEMA1_SIGNED,
        media.DOCKER_SCHEMA1,
    )
)
#: Bytes per piece of a blob read from the upstream.
READ_CHUNK = 256 << 10
#: A manifest larger than this is refused, as wharf refuses to store one.
MAX_MANIFEST = 4 << 20
_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    body: bytes
    media_type: str
    #: What the upstream says its digest is (the caller verifies the body against it).
    digest: str | None


@dataclass(frozen=True, slots=True)
class UpstreamBlob:
    size: int | None
    chunks: AsyncIterator[bytes]


def _ssl(mirror: MirrorConfig) -> ssl.SSLContext | bool:
    if mirror.tls.insecure_skip_verify:
        return False
    if mirror.tls.ca_file:
        return ssl.create_default_context(cafile=mirror.tls.ca_file)
    return True


class Upstream:
    def __init__(self, mirror: MirrorConfig, *, max_connections: int = 64) -> None:
        self.mirror = mirror
        self._http = httpx.AsyncClient(
            base_url=mirror.url,
            verify=_ssl(mirror),
            timeout=httpx.Timeout(30.0, connect=10.0),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": f"wharf/{__version__} (pull-through cache)"},
            follow_redirects=False,
        )
        self._auth = UpstreamAuth(mirror, self._http)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- requests ----------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        repository: RepositoryName,
        *,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """The upstream's answer, authenticated for ``repository``'s pull scope (a 401 is
        answered once), redirects followed; raises the registry error for a failure."""
        scope = f"repository:{repository.value}:pull"
        try:
            for attempt in range(2):
                credentials = await self._auth.headers(scope)
                request_headers = {**(headers or {}), **credentials}
                response = await self._follow(method, path, request_headers, stream)
                if response.status_code != 401 or attempt:
                    break
                challenge = response.headers.get("www-authenticate")
                if not await self._auth.challenged(challenge, scope, sent=bool(credentials)):
                    break
                await response.aclose()
        except (httpx.HTTPError, OSError, RuntimeError, ValueError) as error:
            log.warning("upstream %s unreachable: %s", self.mirror.url, error)
            raise Unavailable(message="the upstream registry cannot be reached") from error
        return response

    async def _follow(
        self, method: str, path: str, headers: dict[str, str], stream: bool
    ) -> httpx.Response:
        url = httpx.URL(path)
        for _ in range(_REDIRECTS + 1):
            request = self._http.build_request(method, url, headers=headers)
            response = await self._http.send(request, stream=stream)
            location = response.headers.get("location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                return response
            await response.aclose()
            target = response.url.join(location)
            if target.host != response.url.host or target.scheme != response.url.scheme:
                # Where the upstream sends a download (a CDN): its URL carries what it needs.
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target
        raise httpx.TooManyRedirects("too many redirects", request=request)

    def _fail(self, response: httpx.Response, unknown: RegistryError) -> NoReturn:
        status = response.status_code
        if status in (401, 403, 404):
            raise unknown
        if status == 429:
            retry = response.headers.get("retry-after")
            headers = {"Retry-After": retry} if retry and retry.isdigit() else None
            raise TooManyRequests(message="the upstream registry is rate limiting", headers=headers)
        log.warning("upstream %s answered %d", self.mirror.url, status)
        raise Unavailable(message=f"the upstream registry answered {status}")

    # -- manifests ---------------------------------------------------------------------------

    async def manifest_digest(self, repository: RepositoryName, tag: Tag) -> Digest:
        """The digest a tag points at upstream (a HEAD, which rate limits do not count)."""
        path = f"/v2/{repository.value}/manifests/{tag.value}"
        response = await self._send("HEAD", path, repository, headers={"Accept": MANIFEST_ACCEPT})
        unknown = ManifestUnknown({"tag": tag.value}, message="manifest unknown upstream")
        if response.status_code != 200:
            self._fail(response, unknown)
        header = response.headers.get("docker-content-digest")
        if header:
            with contextlib.suppress(RegistryError):
                return Digest.parse(header)
        # An upstream that does not say: the body tells.
        fetched = await self.manifest(repository, tag)
        from wharf.registry.manifest_parse import digest_of

        return digest_of(fetched.body)

    async def manifest(
        self, repository: RepositoryName, reference: Tag | Digest
    ) -> FetchedManifest:
        path = f"/v2/{repository.value}/manifests/{reference}"
        response = await self._send(
            "GET", path, repository, headers={"Accept": MANIFEST_ACCEPT}, stream=True
        )
        try:
            if response.status_code != 200:
                self._fail(response, ManifestUnknown(message="manifest unknown upstream"))
            body = bytearray()
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > MAX_MANIFEST:
                    raise Unavailable(message="the upstream's manifest is too large")
        except httpx.HTTPError as error:
            raise Unavailable(message="the upstream registry cannot be reached") from error
        finally:
            await response.aclose()
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        return FetchedManifest(
            bytes(body), media_type, response.headers.get("docker-content-digest")
        )

    # -- blobs -------------------------------------------------------------------------------

    async def blob_size(self, repository: RepositoryName, digest: Digest) -> int:
        response = await self._send("HEAD", f"/v2/{repository.value}/blobs/{digest}", repository)
        if response.status_code != 200:
            self._fail(response, BlobUnknown({"digest": str(digest)}))
        length = response.headers.get("content-length", "")
        if not length.isdigit():
            raise Unavailable(message="the upstream registry did not tell the blob's size")
        return int(length)

    @contextlib.asynccontextmanager
    async def blob(
        self, repository: RepositoryName, digest: Digest, byte_range: str | None = None
    ) -> AsyncIterator[UpstreamBlob]:
        """The blob's bytes as the upstream sends them (unverified: the caller hashes them);
        a ``Range`` is passed on as it is."""
        headers = {"Range": byte_range} if byte_range else None
        response = await self._send(
            "GET",
            f"/v2/{repository.value}/blobs/{digest}",
            repository,
            headers=headers,
            stream=True,
        )
        try:
            if response.status_code not in (200, 206):
                self._fail(response, BlobUnknown({"digest": str(digest)}))
            length = response.headers.get("content-length", "")
            yield UpstreamBlob(int(length) if length.isdigit() else None, _pieces(response))
        finally:
            await response.aclose()

    # -- tags ----------------------------------------------------------------------------------

    async def tags(self, repository: RepositoryName) -> list[str]:
        """Every tag upstream, following its pagination."""
        path: str | None = f"/v2/{repository.value}/tags/list"
        found: list[str] = []
        while path is not None and len(found) < 100_000:
            response = await self._send("GET", path, repository)
            if response.status_code != 200:
                self._fail(response, NameUnknown({"name": repository.value}))
            try:
                found += [t for t in response.json().get("tags") or [] if isinstance(t, str)]
            except ValueError as error:
                raise Unavailable(message="the upstream sent an unreadable tag list") from error
            path = _next_page(response)
        return found


async def _pieces(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for piece in response.aiter_bytes(READ_CHUNK):
            yield piece
    except httpx.HTTPError as error:
        raise Unavailable(message="the upstream registry stopped sending the blob") from error


def _next_page(response: httpx.Response) -> str | None:
    """The ``Link: <...>; rel="next"`` of a paginated list, on the same upstream."""
    link = response.headers.get("link", "")
    if 'rel="next"' not in link or "<" not in link:
        return None
    target = response.url.join(link[link.index("<") + 1 : link.index(">")])
    if target.host != response.url.host:
        return None
    return target.raw_path.decode("ascii")
