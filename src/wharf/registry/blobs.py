"""Blobs: the registry-wide content-addressed store, and each repository's view of it.

A blob's bytes live once at ``blobs/<alg>/<xx>/<hex>/data``; a repository may serve a blob
only when it holds a link to it under ``_layers``. Manifests are stored as blobs too and are
linked under ``_manifests/revisions`` instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wharf.errors import BlobUnknown, RegistryError
from wharf.reference import Digest, RepositoryName
from wharf.storage import paths
from wharf.storage.driver import FileReader, PathNotFound, StorageDriver

__all__ = ["BlobInfo", "BlobStore", "RepositoryBlobs"]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int


class BlobStore:
    """The registry-wide store of blob bytes, addressed by digest."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    async def stat(self, digest: Digest) -> BlobInfo:
        try:
            info = await self.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None
        if info.is_dir:
            raise BlobUnknown({"digest": str(digest)})
        return BlobInfo(digest, info.size)

    async def exists(self, digest: Digest) -> bool:
        try:
            await self.stat(digest)
        except BlobUnknown:
            return False
        return True

    async def get(self, digest: Digest) -> bytes:
        try:
            return await self.driver.get_content(paths.blob_data(digest))
        except PathNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None

    async def put(self, digest: Digest, content: bytes) -> None:
        """Store small content (a manifest) whose digest the caller has computed."""
        await self.driver.put_content(paths.blob_data(digest), content)

    async def open(self, digest: Digest, offset: int = 0) -> FileReader:
        try:
            return await self.driver.reader(paths.blob_data(digest), offset)
        except PathNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None

    async def redirect_url(self, digest: Digest, method: str) -> str | None:
        return await self.driver.redirect_url(paths.blob_data(digest), method)

    async def delete(self, digest: Digest) -> None:
        try:
            await self.driver.delete(paths.blob_dir(digest))
        except PathNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None


def _nothing() -> None:
    pass


class RepositoryBlobs:
    """The blobs one repository may serve: those it links under ``_layers``. ``changed`` is
    called after each link or unlink is stored (``Repository.changed``)."""

    def __init__(
        self,
        store: BlobStore,
        name: RepositoryName,
        changed: Callable[[], None] = _nothing,
        created: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.driver = store.driver
        self.changed = changed
        #: Awaited before a link is written: the catalog lists the repository.
        self.created = created

    async def is_linked(self, digest: Digest) -> bool:
        try:
            target = paths.parse_link(
                await self.driver.get_content(paths.layer_link(self.name, digest))
            )
        except (PathNotFound, RegistryError):  # a corrupt link counts as no link
            return False
        return target == digest

    async def stat(self, digest: Digest) -> BlobInfo:
        if not await self.is_linked(digest):
            raise BlobUnknown({"digest": str(digest)})
        return await self.store.stat(digest)

    async def open(self, digest: Digest, offset: int = 0) -> FileReader:
        """The blob's bytes from ``offset`` (the caller checked it is linked: ``stat``)."""
        return await self.store.open(digest, offset)

    async def redirect_url(self, digest: Digest, method: str) -> str | None:
        return await self.store.redirect_url(digest, method)

    async def link(self, digest: Digest) -> None:
        if self.created is not None:
            await self.created()
        await self.driver.put_content(
            paths.layer_link(self.name, digest), paths.link_content(digest)
        )
        self.changed()

    async def unlink(self, digest: Digest) -> None:
        try:
            await self.driver.delete(paths.layer_dir(self.name, digest))
        except PathNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None
        self.changed()
