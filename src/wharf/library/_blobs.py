"""A repository's blobs: Distribution's BlobStore (statter, provider, ingester, enumerator)
over wharf's blob and upload services."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable

from wharf.errors import BlobUnknown
from wharf.library._listing import linked_digests
from wharf.library._values import as_digest
from wharf.reference import Digest
from wharf.registry.blobs import BlobInfo, RepositoryBlobs
from wharf.registry.uploads import Uploads
from wharf.storage import paths
from wharf.storage.driver import FileReader

__all__ = ["BlobWriter", "Blobs"]

Content = bytes | AsyncIterable[bytes]
_HASH_INLINE = 256 << 10


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _stream(content: Content) -> AsyncIterator[bytes]:
    if isinstance(content, bytes | bytearray | memoryview):
        return _once(bytes(content))
    return aiter(content)


class BlobWriter:
    """A resumable upload session: bytes written are kept in storage, under :attr:`id`, so
    that any process sharing the storage continues it with :meth:`Blobs.resume`, also after
    a restart. :meth:`commit` verifies the digest and links the blob into the repository."""

    def __init__(self, uploads: Uploads, upload_id: str, size: int, check: Callable[[], None]):
        self._uploads = uploads
        self._check = check
        #: The session's id (Distribution's ``BlobWriter.ID``).
        self.id = upload_id
        #: Bytes written so far, by this writer and those before it.
        self.size = size

    async def write(self, content: Content) -> int:
        """Append ``content`` (bytes, or an async iterable of chunks); the new size."""
        self._check()
        self.size = await self._uploads.append(self.id, _stream(content), start=self.size)
        return self.size

    async def commit(self, digest: str | Digest, content: Content | None = None) -> BlobInfo:
        """Append ``content`` if given, verify everything written against ``digest`` and make
        the blob available in the repository. DigestInvalid when it does not match."""
        self._check()
        body = None if content is None else _stream(content)
        info = await self._uploads.complete(self.id, as_digest(digest), body, start=self.size)
        self.size = info.size
        return info

    async def cancel(self) -> None:
        """Discard the session and what was written to it."""
        await self._uploads.cancel(self.id)


class Blobs:
    """The blobs a repository may serve (those it links), and the way to add more."""

    def __init__(self, blobs: RepositoryBlobs, uploads: Uploads, check: Callable[[], None]):
        self._blobs = blobs
        self._uploads = uploads
        self._check = check

    async def stat(self, digest: str | Digest) -> BlobInfo:
        """The blob's digest and size; BlobUnknown when the repository does not link it."""
        return await self._blobs.stat(as_digest(digest))

    async def exists(self, digest: str | Digest) -> bool:
        try:
            await self.stat(digest)
        except BlobUnknown:
            return False
        return True

    async def open(self, digest: str | Digest, offset: int = 0) -> FileReader:
        """A reader of the blob's bytes from ``offset`` (use it with ``async with``)."""
        checked = as_digest(digest)
        await self._blobs.stat(checked)
        return await self._blobs.open(checked, offset)

    async def get(self, digest: str | Digest, *, max_size: int = 64 << 20) -> bytes:
        """The whole blob, for small ones: ValueError above ``max_size`` bytes."""
        info = await self.stat(digest)
        if info.size > max_size:
            raise ValueError(f"blob of {info.size} bytes is larger than max_size={max_size}")
        async with await self._blobs.open(info.digest) as reader:
            return b"".join([chunk async for chunk in reader.chunks(1 << 20)])

    async def put(self, content: Content, digest: str | Digest | None = None) -> BlobInfo:
        """Store a blob from bytes or a stream of chunks, verified against ``digest`` when
        given (computed as it streams otherwise), and link it into the repository."""
        self._check()
        writer = await self.create()
        try:
            if digest is None:
                hasher = hashlib.sha256()

                async def hashed() -> AsyncIterator[bytes]:
                    async for chunk in _stream(content):
                        if len(chunk) < _HASH_INLINE:
                            hasher.update(chunk)
                        else:  # hashlib releases the GIL on large buffers
                            await asyncio.to_thread(hasher.update, chunk)
                        yield chunk

                await writer.write(hashed())
                return await writer.commit(Digest("sha256", hasher.hexdigest()))
            return await writer.commit(digest, content)
        except BaseException:
            with contextlib.suppress(Exception):
                await writer.cancel()
            raise

    async def create(self) -> BlobWriter:
        """A new upload session (Distribution's ``BlobIngester.Create``)."""
        self._check()
        upload_id = await self._uploads.create()
        return BlobWriter(self._uploads, upload_id, 0, self._check)

    async def resume(self, upload_id: str) -> BlobWriter:
        """The session ``upload_id``, to continue where it stopped; BlobUploadUnknown when
        there is none."""
        await self._uploads.require(upload_id)
        size = await self._uploads.size(upload_id)
        return BlobWriter(self._uploads, upload_id, size, self._check)

    async def mount(self, digest: str | Digest) -> BlobInfo:
        """Link a blob the registry holds already (pushed to another repository)."""
        self._check()
        info = await self._blobs.store.stat(as_digest(digest))
        await self._blobs.link(info.digest)
        return info

    async def unlink(self, digest: str | Digest) -> None:
        """Remove the repository's link (the bytes stay for garbage collection)."""
        self._check()
        await self._blobs.unlink(as_digest(digest))

    def enumerate(self) -> AsyncIterator[Digest]:
        """Every blob the repository links, sorted."""
        return linked_digests(self._blobs.driver, paths.layers_dir(self._blobs.name))
