"""The asynchronous registry client: blobs, manifests, tags, catalog, referrers.

Every download is verified against its digest as it arrives; a blob large enough is fetched as
several ranges at once (``parallel``), and a blob too large to send in one request is uploaded
in chunks that resume where the registry says it stands after a failure (its answer to a status
request), as the spec lets a client do. Uploads follow the ``Location`` each answer gives, as
the spec asks, so they work against any registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx

from wharf.client.credentials import Credentials
from wharf.client.download import Answer
from wharf.client.errors import DigestMismatch, ResponseError
from wharf.client.session import Session, catalog_scope, repository_scope

__all__ = ["MANIFEST_TYPES", "AsyncRegistryClient", "Manifest", "Progress"]

#: Every manifest type a client may ask for.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
#: Called with the bytes moved so far and the total (None when unknown).
Progress = Callable[[int, int | None], None]

_CHUNK = 8 << 20
_READ = 1 << 20
#: The most of an error answer's body read for its error code and message.
_ERROR_BODY = 64 << 10
_PARALLEL_MIN = 64 << 20
_RETRIES = 3
_LINK_RE = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")


@dataclass(frozen=True, slots=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str


def digest_of(data: bytes | bytearray | memoryview, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _hasher(digest: str) -> Any:
    algorithm, _, _ = digest.partition(":")
    return hashlib.new(algorithm)


def _check(digest: str, hasher: Any) -> None:
    if f"{digest.partition(':')[0]}:{hasher.hexdigest()}" != digest:
        raise DigestMismatch(f"received bytes do not match {digest}")


async def _refusal(answer: Answer) -> ResponseError:
    """The error a download's answer names; its body read up to ``_ERROR_BODY``."""
    body = b""
    async for piece in answer.pieces():
        body += piece
        if len(body) >= _ERROR_BODY:
            break
    return ResponseError.read(answer.status_code, body[:_ERROR_BODY], "GET", answer.url)


class AsyncRegistryClient:
    """One registry at ``url`` (``https://registry.example.com``)."""

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        verify: ssl.SSLContext | bool | str = True,
        timeout: float = 60.0,
        chunk_size: int = _CHUNK,
        parallel: int = 4,
    ) -> None:
        self.session = Session(url, credentials=credentials, verify=verify, timeout=timeout)
        self.chunk_size = chunk_size
        self.parallel = max(1, parallel)

    async def __aenter__(self) -> AsyncRegistryClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.session.aclose()

    async def _call(
        self, method: str, path: str, scope: str, *, ok: Sequence[int] = (200,), **options: Any
    ) -> httpx.Response:
        response = await self.session.send(method, path, scope, **options)
        if response.status_code not in ok:
            raise ResponseError.of(response)
        return response

    # -- the registry ------------------------------------------------------------------------

    async def ping(self) -> bool:
        """Whether the registry speaks the API (a 401 counts: it asks for credentials)."""
        response = await self.session.http.get("/v2/")
        return response.status_code in (200, 401)

    async def catalog(self, page_size: int | None = None) -> list[str]:
        found: list[str] = []
        params = {"n": str(page_size)} if page_size else None
        async for page in self._pages("/v2/_catalog", catalog_scope(), params):
            found += page.get("repositories") or []
        return found

    async def _pages(
        self, path: str, scope: str, params: dict[str, str] | None
    ) -> AsyncIterator[dict[str, Any]]:
        target: str | None = path
        while target is not None:
            response = await self._call("GET", target, scope, params=params)
            yield response.json()
            params = None
            match = _LINK_RE.search(response.headers.get("link", ""))
            target = match[1] if match else None

    # -- manifests ---------------------------------------------------------------------------

    async def get_manifest(
        self, repository: str, reference: str, accept: Sequence[str] = MANIFEST_TYPES
    ) -> Manifest:
        response = await self._call(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            repository_scope(repository),
            headers={"Accept": ", ".join(accept)},
        )
        body = response.content
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        digest = response.headers.get("docker-content-digest") or digest_of(body)
        if reference.partition(":")[1]:  # asked by digest: the bytes must be those
            algorithm = reference.partition(":")[0]
            if digest_of(body, algorithm) != reference:
                raise DigestMismatch(f"the manifest received is not {reference}")
            digest = reference
        return Manifest(body, media_type, digest)

    async def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest a reference names, None when unknown (a HEAD)."""
        response = await self.session.send(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            repository_scope(repository),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ResponseError.of(response, b"")
        digest: str | None = response.headers.get("docker-content-digest")
        return digest

    async def put_manifest(
        self,
        repository: str,
        reference: str,
        body: bytes,
        media_type: str,
        *,
        tags: Sequence[str] = (),
    ) -> str:
        """Store a manifest by tag or digest (with ``tags`` as well, where the registry
        takes them); its digest."""
        query = f"?{urlencode([('tag', t) for t in tags])}" if tags else ""
        response = await self._call(
            "PUT",
            f"/v2/{repository}/manifests/{reference}{query}",
            repository_scope(repository, "pull", "push"),
            ok=(201,),
            headers={"Content-Type": media_type},
            content=body,
        )
        return response.headers.get("docker-content-digest") or digest_of(body)

    async def delete_manifest(self, repository: str, reference: str) -> None:
        await self._call(
            "DELETE",
            f"/v2/{repository}/manifests/{reference}",
            repository_scope(repository, "delete"),
            ok=(202, 200),
        )

    # -- tags and referrers ------------------------------------------------------------------

    async def tags(self, repository: str, page_size: int | None = None) -> list[str]:
        found: list[str] = []
        params = {"n": str(page_size)} if page_size else None
        path = f"/v2/{repository}/tags/list"
        async for page in self._pages(path, repository_scope(repository), params):
            found += page.get("tags") or []
        return found

    async def referrers(
        self, repository: str, digest: str, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"artifactType": artifact_type} if artifact_type else None
        path = f"/v2/{repository}/referrers/{digest}"
        found: list[dict[str, Any]] = []
        async for page in self._pages(path, repository_scope(repository), params):
            found += page.get("manifests") or []
        return found

    # -- blobs: reading ----------------------------------------------------------------------

    async def blob_size(self, repository: str, digest: str) -> int | None:
        """The blob's size, None when the repository does not have it (a HEAD)."""
        response = await self.session.send(
            "HEAD", f"/v2/{repository}/blobs/{digest}", repository_scope(repository)
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ResponseError.of(response, b"")
        return int(response.headers.get("content-length", "0"))

    async def iter_blob(self, repository: str, digest: str) -> AsyncIterator[bytes]:
        """The blob's bytes as they arrive, verified at the end (DigestMismatch)."""
        answer = await self.session.download(
            f"/v2/{repository}/blobs/{digest}", repository_scope(repository)
        )
        try:
            if answer.status_code != 200:
                raise await _refusal(answer)
            hasher = _hasher(digest)
            async for piece in answer.pieces():
                hasher.update(piece)
                yield piece
            _check(digest, hasher)
        finally:
            await answer.aclose()

    async def get_blob(self, repository: str, digest: str) -> bytes:
        return b"".join([piece async for piece in self.iter_blob(repository, digest)])

    async def download_blob(
        self, repository: str, digest: str, path: Path, *, progress: Progress | None = None
    ) -> int:
        """Write the blob to ``path``, verified; large blobs as ``parallel`` ranges at once.
        Its size."""
        size = await self.blob_size(repository, digest)
        if size is None:
            raise ResponseError(404, "BLOB_UNKNOWN", "blob unknown", "HEAD", digest)
        done = 0
        if size < _PARALLEL_MIN or self.parallel == 1:
            file = await asyncio.to_thread(path.open, "wb")
            with file:
                async for piece in self.iter_blob(repository, digest):
                    await asyncio.to_thread(file.write, piece)
                    done += len(piece)
                    if progress:
                        progress(done, size)
            return size
        await asyncio.to_thread(_preallocate, path, size)
        step = -(-size // self.parallel)
        ranges = [(start, min(start + step, size)) for start in range(0, size, step)]
        counted = [0]

        def moved(count: int) -> None:
            counted[0] += count
            if progress:
                progress(counted[0], size)

        await asyncio.gather(
            *(self._download_range(repository, digest, path, s, e, moved) for s, e in ranges)
        )
        hasher = _hasher(digest)
        await asyncio.to_thread(_hash_file, path, hasher)
        _check(digest, hasher)
        return size

    async def _download_range(
        self,
        repository: str,
        digest: str,
        path: Path,
        start: int,
        end: int,
        moved: Callable[[int], None],
    ) -> None:
        answer = await self.session.download(
            f"/v2/{repository}/blobs/{digest}",
            repository_scope(repository),
            headers={"Range": f"bytes={start}-{end - 1}"},
        )
        try:
            if answer.status_code != 206:
                raise await _refusal(answer)
            fd = await asyncio.to_thread(os.open, path, os.O_WRONLY)
            try:
                position = start
                async for piece in answer.pieces():
                    await asyncio.to_thread(os.pwrite, fd, piece, position)
                    position += len(piece)
                    moved(len(piece))
            finally:
                os.close(fd)
        finally:
            await answer.aclose()

    # -- blobs: writing ----------------------------------------------------------------------

    async def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Link a blob of ``source`` into ``repository`` without sending it; whether the
        registry did (otherwise an upload is needed)."""
        scope = f"{repository_scope(repository, 'pull', 'push')} {repository_scope(source)}"
        response = await self.session.send(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            scope,
            params={"mount": digest, "from": source},
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202:  # an upload session instead: not needed
            location = response.headers.get("location")
            if location:
                await self.session.send("DELETE", location, scope)
            return False
        raise ResponseError.of(response)

    async def push_blob(
        self,
        repository: str,
        data: bytes | Path,
        digest: str | None = None,
        *,
        progress: Progress | None = None,
    ) -> str:
        """Upload a blob unless the repository has it: in one request when it fits in a
        chunk, else in chunks, resumed after a failure. Its digest."""
        if digest is None:
            digest = digest_of(data) if isinstance(data, bytes) else await _file_digest(data)
        if await self.blob_size(repository, digest) is not None:
            return digest
        size = (
            len(data) if isinstance(data, bytes) else (await asyncio.to_thread(data.stat)).st_size
        )
        scope = repository_scope(repository, "pull", "push")
        response = await self._call(
            "POST", f"/v2/{repository}/blobs/uploads/", scope, ok=(202,), content=b""
        )
        location = response.headers["location"]
        if size <= self.chunk_size:  # in one request, as every registry takes it
            content = data if isinstance(data, bytes) else await asyncio.to_thread(data.read_bytes)
            separator = "&" if "?" in location else "?"
            await self._call(
                "PUT",
                f"{location}{separator}{urlencode({'digest': digest})}",
                scope,
                ok=(201,),
                headers={"Content-Type": "application/octet-stream"},
                content=content,
            )
            if progress:
                progress(size, size)
            return digest
        offset = 0
        while offset < size:
            piece = await _read(data, offset, min(self.chunk_size, size - offset))
            location, offset = await self._patch(location, scope, piece, offset)
            if progress:
                progress(offset, size)
        separator = "&" if "?" in location else "?"
        await self._call(
            "PUT", f"{location}{separator}{urlencode({'digest': digest})}", scope, ok=(201,)
        )
        return digest

    async def _patch(self, location: str, scope: str, piece: bytes, offset: int) -> tuple[str, int]:
        """Send one chunk at ``offset``; retried from where the registry says the upload
        stands. The next Location and offset."""
        for attempt in range(_RETRIES):
            try:
                response = await self.session.send(
                    "PATCH",
                    location,
                    scope,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                    },
                    content=piece,
                )
            except httpx.TransportError:
                if attempt + 1 == _RETRIES:
                    raise
                location, stands = await self._status(location, scope)
                if stands != offset:
                    raise
                continue
            if response.status_code == 202:
                return response.headers["location"], offset + len(piece)
            if response.status_code == 416 and attempt + 1 < _RETRIES:
                location, stands = await self._status(location, scope)
                if stands == offset + len(piece):  # the chunk got there: the answer was lost
                    return location, stands
                continue
            raise ResponseError.of(response)
        raise RuntimeError("unreachable")  # pragma: no cover

    async def _status(self, location: str, scope: str) -> tuple[str, int]:
        response = await self._call("GET", location, scope, ok=(204,))
        end = response.headers.get("range", "0-0").rpartition("-")[2]
        size = int(end) + 1 if end.isdigit() and int(end) else 0
        return response.headers.get("location", location), size

    async def delete_blob(self, repository: str, digest: str) -> None:
        await self._call(
            "DELETE",
            f"/v2/{repository}/blobs/{digest}",
            repository_scope(repository, "delete"),
            ok=(202, 200),
        )


async def _read(data: bytes | Path, offset: int, length: int) -> bytes:
    if isinstance(data, bytes):
        return data[offset : offset + length]

    def read() -> bytes:
        with data.open("rb") as file:
            file.seek(offset)
            return file.read(length)

    return await asyncio.to_thread(read)


async def _file_digest(path: Path) -> str:
    def digest() -> str:
        hasher = hashlib.sha256()
        with path.open("rb") as file:
            while piece := file.read(_READ):
                hasher.update(piece)
        return f"sha256:{hasher.hexdigest()}"

    return await asyncio.to_thread(digest)


def _preallocate(path: Path, size: int) -> None:
    with path.open("wb") as file:
        file.truncate(size)


def _hash_file(path: Path, hasher: Any) -> None:
    with path.open("rb") as file:
        while piece := file.read(_READ):
            hasher.update(piece)
