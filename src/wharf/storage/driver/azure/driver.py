"""The Azure storage driver, byte-compatible with Distribution's ``azure`` driver.

Blob names follow Distribution's layout (``layout``); uncommitted files are blocks staged on
their own blob (``writer``); reads are ranged and parallel (``reader``); leases are Azure's
(``lease``). Directories are name prefixes: ``stat`` of a directory answers when some blob
lies below it, ``list`` asks with a ``/`` delimiter, ``walk`` lists the whole prefix without
one and infers directories as the S3 driver does. ``delete`` lists the prefix, uncommitted
blobs included, and deletes blob by blob, breaking the lease of a lease blob held at that
moment, so that deleting an upload directory leaves nothing behind, staged blocks included.

``move`` is a server-side copy and a delete. Within one storage account Azure copies a block
blob without moving its bytes (Azurite: 64 MiB in 0.02 s), so a move costs about what a
rename would, and ``write_in_place`` stays off: it would also be unsafe here, since
committing one writer's blocks discards every other block staged on the same blob, so two
writers of one path could not be independent.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from azure.storage.blob import BlobLeaseClient

from wharf.storage.driver.azure.blobs import Blobs, ObjectInfo
from wharf.storage.driver.azure.client import (
    DEFAULT_MAX_THREADS,
    AzureClient,
    AzureError,
    RetryPolicy,
    error_status,
    is_not_found,
    translating,
)
from wharf.storage.driver.azure.layout import BlobLayout
from wharf.storage.driver.azure.lease import take_lease
from wharf.storage.driver.azure.params import AzureParameters, parse_parameters
from wharf.storage.driver.azure.reader import (
    READ_AHEAD,
    READ_BUDGET,
    READ_CHUNK,
    ReadBudget,
    open_reader,
)
from wharf.storage.driver.azure.writer import BLOCK_SIZE, AzureWriter, Stored, load_stored
from wharf.storage.driver.base import (
    FileInfo,
    FileReader,
    FileWriter,
    Lease,
    PathNotFound,
    ResumeState,
    StorageDriver,
)
from wharf.storage.driver.listed_walk import walk_listed

__all__ = ["REDIRECT_EXPIRY", "AzureDriver"]

#: Lifetime of a SAS redirect URL (Distribution's 20 minutes).
REDIRECT_EXPIRY = timedelta(minutes=20)
#: Deletes in flight when a directory goes.
_PARALLEL_DELETES = 16


class AzureDriver(StorageDriver):
    name = "azure"

    def __init__(
        self,
        params: AzureParameters,
        *,
        max_threads: int = DEFAULT_MAX_THREADS,
        page_size: int = 5000,
        retry: RetryPolicy | None = None,
        block_size: int = BLOCK_SIZE,
        read_chunk: int = READ_CHUNK,
        read_ahead: int = READ_AHEAD,
        read_budget: int = READ_BUDGET,
    ) -> None:
        """The keyword knobs exist for tests and benchmarks; configuration sets ``params``."""
        self.params = params
        self.layout = BlobLayout(params.rootdirectory, legacy=params.legacyrootprefix)
        self.client = AzureClient(params, max_threads=max_threads, retry=retry)
        self.blobs = Blobs(self.client, page_size=page_size)
        self._block_size = block_size
        self._read_chunk = read_chunk
        self._read_ahead = read_ahead
        self._read_budget = ReadBudget(read_budget)

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> AzureDriver:
        """The driver for a ``storage: azure:`` section; ValueError naming a bad parameter."""
        return cls(parse_parameters(parameters))

    # -- files ------------------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        with translating(path):
            return await self.blobs.get(self.layout.key(path))

    async def put_content(self, path: str, content: bytes) -> None:
        with translating(path):
            await self.blobs.put(self.layout.key(path), bytes(content))

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        return await open_reader(
            self.blobs,
            path,
            self.layout.key(path),
            offset,
            chunk=self._read_chunk,
            ahead=self._read_ahead,
            budget=self._read_budget,
        )

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        key = self.layout.key(path)
        stored = None
        if append:
            with translating(path):
                stored = await load_stored(self.blobs, key)
            if stored is None:
                raise PathNotFound(path)
        return AzureWriter(self.blobs, path, key, stored, self._block_size)

    async def resume_writer(self, path: str, state: ResumeState | None) -> FileWriter:
        if not isinstance(state, Stored):
            return await super().resume_writer(path, state)
        return AzureWriter(self.blobs, path, self.layout.key(path), state, self._block_size)

    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        # The turn is read from the lease blob in the same round trip: ``after`` saves nothing.
        key = self.layout.key(path)
        with translating(path):
            return await take_lease(self.blobs, path, key, self.layout.lease_name(key))

    async def stat(self, path: str) -> FileInfo:
        if path == "/":
            return FileInfo(path, 0, None, True)
        with translating(path):
            try:
                info = await self.blobs.head(self.layout.key(path))
                return FileInfo(path, info.size, info.modified, False)
            except AzureError as exc:
                # 403: allowed to list but not to read, as Distribution also copes with.
                if not (is_not_found(exc) or error_status(exc) == 403):
                    raise
            async for blobs, prefixes in self.blobs.list_pages(
                self.layout.directory(path), delimiter="/"
            ):
                if prefixes or any(self.layout.path(b.name) for b in blobs):
                    return FileInfo(path, 0, None, True)
        raise PathNotFound(path)

    async def move(self, source: str, destination: str) -> None:
        with translating(source):
            try:
                info = await self.blobs.head(self.layout.key(source))
            except AzureError as exc:
                if is_not_found(exc):
                    raise PathNotFound(source) from exc
                raise
            if source == destination:
                return
            await self.blobs.copy(info.name, self.layout.key(destination))
            await self.blobs.delete(info.name)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if method not in ("GET", "HEAD"):
            return None
        key = self.layout.key(path)
        with translating(path):
            # In a thread: Entra credentials fetch a user delegation key over the network.
            return await self.client.call("Sign", lambda: self.client.sign(key, REDIRECT_EXPIRY))

    # -- directories ------------------------------------------------------------------------

    async def list(self, path: str) -> list[str]:
        children: builtins.list[str] = []
        with translating(path):
            async for blobs, prefixes in self.blobs.list_pages(
                self.layout.directory(path), delimiter="/"
            ):
                names = [b.name for b in blobs] + [p.rstrip("/") for p in prefixes]
                children += [child for name in names if (child := self.layout.path(name))]
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(children)

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return walk_listed(path, self.walk_files(path))

    async def walk_files(
        self, path: str, skip: Callable[[str], bool] | None = None
    ) -> AsyncIterator[builtins.list[FileInfo]]:
        with translating(path):
            async for blobs, _ in self.blobs.list_pages(self.layout.directory(path)):
                files = [
                    FileInfo(file, blob.size, blob.modified, False, blob.md5 or None)
                    for blob in blobs
                    if (file := self.layout.path(blob.name)) is not None
                ]
                if files:
                    yield files

    async def delete(self, path: str) -> None:
        key = self.layout.key(path)
        below, leased = key + "/", self.layout.lease_name(key)

        def doomed(name: str) -> bool:
            # Not siblings that merely start alike (``/a/bc`` when deleting ``/a/b``).
            return name in (key, leased) or name.startswith(below)

        found = False
        with translating(path):
            async for blobs, _ in self.blobs.list_pages(key, uncommitted=True):
                names = [b.name for b in blobs if doomed(b.name)]
                # A lease blob alone is no file: deleting it finds nothing there.
                found = found or any(self.layout.leased_key(n) is None for n in names)
                await self._delete_all(names)
        if not found:
            raise PathNotFound(path)

    async def _delete_all(self, names: Sequence[str]) -> None:
        limit = asyncio.Semaphore(_PARALLEL_DELETES)

        async def one(name: str) -> None:
            async with limit:
                try:
                    if not await self.blobs.delete(name):
                        await self.blobs.discard_staged(name)  # staged blocks only
                except AzureError as exc:
                    if error_status(exc) != 412 or self.layout.leased_key(name) is None:
                        raise
                    # A held lease blob: its file goes, so does its lease.
                    blob = self.blobs.blob(name)
                    await self.client.call(
                        "BreakLease", lambda: BlobLeaseClient(blob).break_lease(0)
                    )
                    await self.blobs.delete(name)

        await asyncio.gather(*(one(name) for name in names))

    # -- maintenance ------------------------------------------------------------------------

    async def purge_uncommitted(self, before: datetime, *, dry_run: bool = False) -> Sequence[str]:
        """Discard the staged blocks of blobs that hold nothing committed, last written before
        ``before``: those of upload sessions deleted by other means (Distribution's purge
        deletes what it lists, which staged blocks are not) and of processes that died. Azure
        drops them itself after 7 days; until then they are billed."""
        with translating("/"):
            everything = await self.blobs.list_all(self.layout.prefix, uncommitted=True)
            committed = {b.name for b in await self.blobs.list_all(self.layout.prefix)}
            stale = [
                blob for blob in everything
                if blob.name not in committed and _older(blob, before)
            ]  # fmt: skip
            if not dry_run:
                await asyncio.gather(*(self.blobs.discard_staged(b.name) for b in stale))
        return sorted({path for b in stale if (path := self.layout.path(b.name))})

    async def close(self) -> None:
        await self.client.close()


def _older(blob: ObjectInfo, before: datetime) -> bool:
    return blob.modified is not None and blob.modified < before
