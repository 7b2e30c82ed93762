"""One upstream registry, as the pull-through cache asks it: manifests, blobs, tags.

The URL of every request is built from the mirror's configured base URL and from validated
names (a repository name, a tag, a digest): nothing in a client's request chooses a host. The
client's session (``wharf.client.session``) speaks the auth flows, follows the upstream's own
redirects (Docker Hub sends blob downloads to a CDN) without the Authorization header once they
leave the upstream's host, and keeps one connection pool per upstream alive.

Failures leave as registry errors a client understands: what the upstream does not have, or
will not give this mirror, is unknown (Docker Hub answers 401 for repositories that do not
exist); 429 is passed on as TOOMANYREQUESTS with its Retry-After; 5xx, timeouts and dropped
connections are UNAVAILABLE. Never a 500.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import NoReturn

import httpx

from wharf import __version__
from wharf.client.credentials import CredentialHelper, Credentials, static
from wharf.client.download import Answer, DownloadFailed
from wharf.client.session import Session, repository_scope
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
#: A manifest larger than this is refused, as wharf refuses to store one.
MAX_MANIFEST = 4 << 20


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


def _credentials(mirror: MirrorConfig) -> Credentials | None:
    helper = mirror.credential_helper
    if helper is not None:
        lifetime = helper.lifetime.total_seconds() if helper.lifetime else None
        return CredentialHelper(helper.command, lifetime)
    if mirror.username:
        return static(mirror.username, mirror.password)
    return None


class Upstream:
    def __init__(self, mirror: MirrorConfig, *, max_connections: int = 64) -> None:
        self.mirror = mirror
        self._session = Session(
            mirror.url,
            credentials=_credentials(mirror),
            verify=_ssl(mirror),
            timeout=30.0,
            max_connections=max_connections,
            user_agent=f"wharf/{__version__} (pull-through cache)",
        )

    async def aclose(self) -> None:
        await self._session.aclose()

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
        """The upstream's answer for ``repository``'s pull scope; raises UNAVAILABLE when
        the upstream cannot be reached."""
        with self._reaching():
            response = await self._session.send(
                method, path, repository_scope(repository.value), headers=headers, stream=stream
            )
        return response

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """Raises UNAVAILABLE for whatever keeps a request from the upstream (DownloadFailed
        is one of httpx's transport errors)."""
        try:
            yield
        except (httpx.HTTPError, OSError, RuntimeError, ValueError) as error:
            log.warning("upstream %s unreachable: %s", self.mirror.url, error)
            raise Unavailable(message="the upstream registry cannot be reached") from error

    def _fail(self, response: httpx.Response | Answer, unknown: RegistryError) -> NoReturn:
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
        path, scope = f"/v2/{repository.value}/blobs/{digest}", repository_scope(repository.value)
        with self._reaching():
            answer = await self._session.download(path, scope, headers=headers)
        try:
            if answer.status_code not in (200, 206):
                self._fail(answer, BlobUnknown({"digest": str(digest)}))
            length = answer.headers.get("content-length", "")
            yield UpstreamBlob(int(length) if length.isdigit() else None, _pieces(answer))
        finally:
            await answer.aclose()

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


async def _pieces(answer: Answer) -> AsyncIterator[bytes]:
    try:
        async for piece in answer.pieces():
            yield piece
    except DownloadFailed as error:
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
