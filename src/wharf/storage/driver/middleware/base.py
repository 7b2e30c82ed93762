"""A driver that hands every call to the driver it wraps: storage middleware override
``redirect_url`` only, as Distribution's embed the driver they wrap. Every method of the
contract is forwarded, so that the wrapped driver's own (faster) ones stay in use; a test
checks that none is missed."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from wharf.storage.driver.base import (
    FileInfo,
    FileReader,
    FileWriter,
    Lease,
    Listings,
    ResumeState,
    StorageDriver,
)

__all__ = ["BucketKeyer", "Middleware", "bucket_key"]


@runtime_checkable
class BucketKeyer(Protocol):
    """A driver that can name the object key of a path in its bucket (Distribution's
    ``S3BucketKeyer``): what a CDN in front of the bucket serves it as."""

    def bucket_key(self, path: str) -> str: ...


def bucket_key(driver: StorageDriver, path: str) -> str | None:
    """The key of ``path`` in the bucket of the driver below any middleware, or None when
    that driver has no bucket keys."""
    while isinstance(driver, Middleware):
        driver = driver.inner
    return driver.bucket_key(path) if isinstance(driver, BucketKeyer) else None


class Middleware(StorageDriver):
    """Wraps ``inner``; its ``name`` and properties are the inner driver's."""

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name
        self.write_in_place = inner.write_in_place
        self.exclusive_leases = inner.exclusive_leases

    async def get_content(self, path: str) -> bytes:
        return await self.inner.get_content(path)

    async def put_content(self, path: str, content: bytes) -> None:
        await self.inner.put_content(path, content)

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        return await self.inner.reader(path, offset)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        return await self.inner.writer(path, append)

    async def resume_writer(self, path: str, state: ResumeState | None) -> FileWriter:
        return await self.inner.resume_writer(path, state)

    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        return await self.inner.lease(path, after=after)

    async def stat(self, path: str) -> FileInfo:
        return await self.inner.stat(path)

    async def list(self, path: str) -> builtins.list[str]:
        return await self.inner.list(path)

    async def list_many(self, directories: Sequence[str]) -> Listings:
        return await self.inner.list_many(directories)

    async def get_many(self, paths: Sequence[str]) -> builtins.list[bytes | None]:
        return await self.inner.get_many(paths)

    async def listing_version(self, path: str) -> tuple[int, int] | None:
        return await self.inner.listing_version(path)

    async def list_page(
        self, path: str, after: str | None, limit: int
    ) -> tuple[builtins.list[str], bool]:
        return await self.inner.list_page(path, after, limit)

    async def move(self, source: str, destination: str) -> None:
        await self.inner.move(source, destination)

    async def concatenate(self, sources: Sequence[str], destination: str) -> None:
        await self.inner.concatenate(sources, destination)

    async def delete(self, path: str) -> None:
        await self.inner.delete(path)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        async for info in self.inner.walk(path):
            yield info

    async def walk_files(
        self, path: str, skip: Callable[[str], bool] | None = None
    ) -> AsyncIterator[builtins.list[FileInfo]]:
        async for batch in self.inner.walk_files(path, skip):
            yield batch

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return await self.inner.redirect_url(path, method)

    async def purge_uncommitted(self, before: datetime, *, dry_run: bool = False) -> Sequence[str]:
        return await self.inner.purge_uncommitted(before, dry_run=dry_run)

    async def close(self) -> None:
        await self.inner.close()
