"""The GCS storage driver, byte-compatible with Distribution's ``gcs`` driver.

Object names follow Distribution's layout (``layout``); uncommitted files are part objects
beside the file, composed at commit (``writer``); reads are one stream (``reader``); leases
are generation-conditional writes of a lease object (``lease``). Directories are name
prefixes: ``stat`` of a directory answers when some object lies below it, ``list`` asks with
a ``/`` delimiter, ``walk`` lists the whole prefix without one and infers directories.
``delete`` lists the prefix and deletes object by object, parts and lease objects included.

``move`` is a server-side rewrite and a delete (GCS copies within a location and storage
class without moving bytes, the emulators copy them). ``write_in_place`` is on: a writer's
parts are invisible at its path until the commit composes them, and a commit touches only
the parts it composed, so writers of one path are independent; a blob sent whole is then
composed where it stays, without the rewrite.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from wharf.storage.driver.base import (
    FileInfo,
    FileReader,
    FileWriter,
    Lease,
    PathNotFound,
    ResumeState,
    StorageDriver,
)
from wharf.storage.driver.gcs.client import GCSClient, GCSError, RetryPolicy, translating
from wharf.storage.driver.gcs.layout import COMPOSE_MARK, PART_MARK, KeyLayout
from wharf.storage.driver.gcs.lease import take_lease
from wharf.storage.driver.gcs.objects import Objects
from wharf.storage.driver.gcs.params import GCSParameters, parse_parameters
from wharf.storage.driver.gcs.reader import open_reader
from wharf.storage.driver.gcs.writer import GCSWriter, Stored, load_stored
from wharf.storage.driver.listed_walk import walk_listed

__all__ = ["REDIRECT_EXPIRY", "GCSDriver"]

#: Lifetime of a signed redirect URL (Distribution's 20 minutes).
REDIRECT_EXPIRY = timedelta(minutes=20)
#: Deletes in flight when a directory goes.
_PARALLEL_DELETES = 16


class GCSDriver(StorageDriver):
    name = "gcs"
    write_in_place = True

    def __init__(
        self,
        params: GCSParameters,
        *,
        page_size: int = 1000,
        retry: RetryPolicy | None = None,
        chunk_size: int | None = None,
    ) -> None:
        """The keyword knobs exist for tests and benchmarks; configuration sets ``params``."""
        self.params = params
        self.layout = KeyLayout(params.rootdirectory)
        self.client = GCSClient(params, retry=retry)
        self.objects = Objects(self.client, page_size=page_size)
        self._chunk_size = chunk_size or params.chunksize

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> GCSDriver:
        """The driver for a ``storage: gcs:`` section; ValueError naming a bad parameter."""
        return cls(parse_parameters(parameters))

    # -- files ------------------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        with translating(path):
            return await self.objects.get(self.layout.key(path))

    async def put_content(self, path: str, content: bytes) -> None:
        with translating(path):
            await self.objects.put(self.layout.key(path), bytes(content))

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        return await open_reader(self.objects, path, self.layout.key(path), offset)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        key = self.layout.key(path)
        stored = None
        if append:
            with translating(path):
                stored = await load_stored(self.objects, key)
            if stored is None:
                raise PathNotFound(path)
        return GCSWriter(self.objects, path, key, stored, self._chunk_size)

    async def resume_writer(self, path: str, state: ResumeState | None) -> FileWriter:
        if not isinstance(state, Stored):
            return await super().resume_writer(path, state)
        return GCSWriter(self.objects, path, self.layout.key(path), state, self._chunk_size)

    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        # The turn is read from the lease object in any case: ``after`` saves nothing.
        with translating(path):
            return await take_lease(self.objects, path, self.layout.key(path))

    async def stat(self, path: str) -> FileInfo:
        if path == "/":
            return FileInfo(path, 0, None, True)
        with translating(path):
            try:
                info = await self.objects.head(self.layout.key(path))
                return FileInfo(path, info.size, info.modified, False)
            except GCSError as exc:
                if exc.status not in (403, 404):  # 403: may list but not read
                    raise
            async for objects, prefixes in self.objects.list_pages(
                self.layout.directory(path), delimiter="/"
            ):
                if prefixes or any(o.is_file and self.layout.path(o.name) for o in objects):
                    return FileInfo(path, 0, None, True)
        raise PathNotFound(path)

    async def move(self, source: str, destination: str) -> None:
        key = self.layout.key(source)
        with translating(source):
            if source == destination:
                await self.objects.head(key)
                return
            await self.objects.copy(key, self.layout.key(destination))
            await self.objects.delete(key)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if method not in ("GET", "HEAD"):
            return None
        return self.client.sign(self.layout.key(path), method, REDIRECT_EXPIRY)

    # -- directories ------------------------------------------------------------------------

    async def list(self, path: str) -> list[str]:
        children: builtins.list[str] = []
        with translating(path):
            async for objects, prefixes in self.objects.list_pages(
                self.layout.directory(path), delimiter="/"
            ):
                names = [o.name for o in objects if o.is_file] + [p.rstrip("/") for p in prefixes]
                children += [child for name in names if (child := self.layout.path(name))]
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(set(children))

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return walk_listed(path, self.walk_files(path))

    async def walk_files(
        self, path: str, skip: Callable[[str], bool] | None = None
    ) -> AsyncIterator[builtins.list[FileInfo]]:
        with translating(path):
            async for objects, _ in self.objects.list_pages(self.layout.directory(path)):
                files = [
                    FileInfo(file, item.size, item.modified, False, item.md5 or None)
                    for item in objects
                    if item.is_file and (file := self.layout.path(item.name)) is not None
                ]
                if files:
                    yield files

    async def delete(self, path: str) -> None:
        key = self.layout.key(path)
        below = key + "/"

        def doomed(name: str) -> bool:
            # Not siblings that merely start alike (``/a/bc`` when deleting ``/a/b``).
            return name == key or name.startswith(below) or KeyLayout.owner(name) == key

        found = False
        with translating(path):
            async for objects, _ in self.objects.list_pages(key):
                names = [o.name for o in objects if doomed(o.name)]
                # Parts or a lease object alone are no file: deleting them finds nothing.
                found = found or any(KeyLayout.owner(n) is None for n in names)
                await self._delete_all(names)
        if not found:
            raise PathNotFound(path)

    async def _delete_all(self, names: Sequence[str]) -> None:
        limit = asyncio.Semaphore(_PARALLEL_DELETES)

        async def one(name: str) -> None:
            async with limit:
                await self.objects.delete(name)

        await asyncio.gather(*(one(name) for name in names))

    # -- maintenance ------------------------------------------------------------------------

    async def purge_uncommitted(self, before: datetime, *, dry_run: bool = False) -> Sequence[str]:
        """Delete part and intermediate objects last written before ``before``: those of
        writers that died, and of files whose directory was deleted by other means while a
        writer was still uploading (deleting an upload directory takes its parts along)."""
        with translating("/"):
            # Two listings GCS filters by name, not the whole bucket.
            everything = [
                info
                for mark in (PART_MARK, COMPOSE_MARK)
                for info in await self.objects.list_all(self.layout.prefix, glob=f"**{mark}*")
            ]
            stale = [
                info for info in everything
                if (PART_MARK in info.name or COMPOSE_MARK in info.name)
                and KeyLayout.owner(info.name) is not None
                and info.modified is not None and info.modified < before
            ]  # fmt: skip
            if not dry_run:
                await self._delete_all([info.name for info in stale])
        return sorted(
            {p for info in stale if (p := self.layout.path(KeyLayout.owner(info.name) or ""))}
        )

    async def close(self) -> None:
        await self.client.close()
