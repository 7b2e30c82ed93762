"""The S3 storage driver, byte-compatible with Distribution's ``s3`` (s3-aws) driver.

Keys follow Distribution's layout (``layout``); uncommitted files are multipart uploads plus
pending objects (``writer``); reads are ranged and parallel (``reader``). Directories are
prefixes: ``stat`` of a directory answers when some file lies below it, ``list`` asks with
a ``/`` delimiter, ``walk`` lists the whole prefix without one (one request per 1000 keys
instead of one per directory) and infers directories as Distribution's walk does, so it
visits siblings in key order: a sibling whose name continues with ``-`` or ``.`` (``b-c``,
``b.c``) comes before the directory ``b``'s subtree. ``delete`` lists the prefix and deletes
page by page with DeleteObjects, and aborts the multipart uploads below the path, so that
deleting an upload directory leaves nothing behind. ``move`` is a server-side copy
(``bucket.copy``) and a delete: as long as the upload itself on a store such as Swift, hence
``write_in_place``, which the writer's multipart uploads of their own make safe.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
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
from wharf.storage.driver.listed_walk import walk_listed
from wharf.storage.driver.local_leases import LocalLeases
from wharf.storage.driver.s3.bucket import Bucket, Part, Upload
from wharf.storage.driver.s3.client import (
    DEFAULT_MAX_THREADS,
    RetryPolicy,
    S3Client,
    S3Error,
    error_status,
    is_not_found,
    translating,
)
from wharf.storage.driver.s3.layout import PENDING_MARK, KeyLayout
from wharf.storage.driver.s3.lease import take_lease
from wharf.storage.driver.s3.params import MIN_CHUNK_SIZE, S3Parameters, parse_parameters
from wharf.storage.driver.s3.reader import (
    READ_AHEAD,
    READ_BUDGET,
    READ_CHUNK,
    ReadBudget,
    open_reader,
)
from wharf.storage.driver.s3.writer import S3Writer, StoredFile, load_stored

__all__ = ["REDIRECT_EXPIRY", "S3Driver"]

#: Lifetime of a presigned redirect URL, in seconds (Distribution's 20 minutes).
REDIRECT_EXPIRY = 20 * 60


class S3Driver(StorageDriver):
    name = "s3"
    write_in_place = True

    def __init__(
        self,
        params: S3Parameters,
        *,
        max_threads: int = DEFAULT_MAX_THREADS,
        page_size: int = 1000,
        retry: RetryPolicy | None = None,
        read_chunk: int = READ_CHUNK,
        read_ahead: int = READ_AHEAD,
        read_budget: int = READ_BUDGET,
    ) -> None:
        """``page_size`` (keys per listing and per DeleteObjects), ``retry`` and the read
        knobs exist for tests and benchmarks; configuration sets only ``params``."""
        self.params = params
        self.layout = KeyLayout(params.rootdirectory)
        self.client = S3Client(params, max_threads=max_threads, retry=retry)
        self.bucket = Bucket(self.client, params, page_size=page_size)
        self._read_chunk = read_chunk
        self._read_ahead = read_ahead
        self._read_budget = ReadBudget(read_budget)
        self.exclusive_leases = params.conditionalwrites
        identity = f"{params.regionendpoint}\n{params.bucket}\n{self.layout.prefix}"
        self._local_leases = None if params.conditionalwrites else LocalLeases(identity)

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> S3Driver:
        """The driver for a ``storage: s3:`` section; ValueError naming a bad parameter."""
        return cls(parse_parameters(parameters))

    # -- files ------------------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        with translating(path):
            return await self.bucket.get(self.layout.key(path))

    async def put_content(self, path: str, content: bytes) -> None:
        with translating(path):
            await self.bucket.put(self.layout.key(path), bytes(content))

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        key = self.layout.key(path)
        return await open_reader(
            self.bucket,
            path,
            key,
            offset,
            chunk=self._read_chunk,
            ahead=self._read_ahead,
            budget=self._read_budget,
        )

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        stored = None
        if append:
            with translating(path):
                stored = await load_stored(self.bucket, self.layout, self.layout.key(path))
            if stored is None:
                raise PathNotFound(path)
        return S3Writer(self.bucket, self.layout, path, stored, self.params.chunksize)

    async def resume_writer(self, path: str, state: ResumeState | None) -> FileWriter:
        if not isinstance(state, StoredFile):
            return await super().resume_writer(path, state)
        return S3Writer(self.bucket, self.layout, path, state, self.params.chunksize)

    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        with translating(path):
            if self._local_leases is not None:
                return await self._local_leases.lease(path, lambda: self._exists(path))
            return await take_lease(self.bucket, self.layout, path, after)

    async def _exists(self, path: str) -> bool:
        try:
            await self.bucket.head(self.layout.key(path))
        except S3Error as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    async def stat(self, path: str) -> FileInfo:
        if path == "/":
            return FileInfo(path, 0, None, True)
        with translating(path):
            try:
                info = await self.bucket.head(self.layout.key(path))
                return FileInfo(path, info.size, info.modified, False)
            except S3Error as exc:
                # 403: allowed to list but not to read, as Distribution also copes with.
                if not (is_not_found(exc) or error_status(exc) == 403):
                    raise
            async for objects, prefixes in self.bucket.list_pages(
                self.layout.directory(path), delimiter="/"
            ):
                if prefixes or any(self.layout.path(o.key) for o in objects):
                    return FileInfo(path, 0, None, True)
        raise PathNotFound(path)

    async def move(self, source: str, destination: str) -> None:
        with translating(source):
            try:
                info = await self.bucket.head(self.layout.key(source))
            except S3Error as exc:
                if is_not_found(exc):
                    raise PathNotFound(source) from exc
                raise
            if source == destination:
                return
            await self.bucket.copy(info, self.layout.key(destination))
            await self.bucket.delete_key(info.key)

    async def concatenate(self, sources: Sequence[str], destination: str) -> None:
        """By part copies inside the bucket (UploadPartCopy), as tusd's s3store joins partial
        uploads, when every source but the last fills S3's smallest part; otherwise (a short
        source cannot be a part) through a writer."""
        with translating(destination):
            infos = []
            for source in sources:
                try:
                    infos.append(await self.bucket.head(self.layout.key(source)))
                except S3Error as exc:
                    if is_not_found(exc):
                        raise PathNotFound(source) from exc
                    raise
            infos = [info for info in infos if info.size]
            if not infos or any(info.size < MIN_CHUNK_SIZE for info in infos[:-1]):
                await super().concatenate(sources, destination)
                return
            key = self.layout.key(destination)
            upload_id = await self.bucket.create_upload(key)
            try:
                parts: builtins.list[Part] = []
                for index, info in enumerate(infos):
                    last = index == len(infos) - 1
                    parts += await self.bucket.copy_parts(
                        info, key, upload_id, len(parts) + 1, last=last
                    )
                total = sum(info.size for info in infos)
                await self.bucket.complete_upload(key, upload_id, parts, total)
            except BaseException:
                await asyncio.shield(self.bucket.abort_upload(key, upload_id))
                raise

    def bucket_key(self, path: str) -> str:
        """The object key of ``path`` (Distribution's ``S3BucketKey``), which a CloudFront
        distribution in front of the bucket serves it under."""
        return self.layout.key(path)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if method not in ("GET", "HEAD"):
            return None
        key = self.layout.key(path)
        with translating(path):
            # In a thread: the first presign may resolve credentials over the network.
            return await self.client.call(
                "Presign", lambda: self.client.presign(method, key, REDIRECT_EXPIRY)
            )

    # -- directories ------------------------------------------------------------------------

    async def list(self, path: str) -> list[str]:
        children: builtins.list[str] = []
        with translating(path):
            async for objects, prefixes in self.bucket.list_pages(
                self.layout.directory(path), delimiter="/"
            ):
                names = [o.key for o in objects] + [p.rstrip("/") for p in prefixes]
                children += [child for name in names if (child := self.layout.path(name))]
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(children)

    async def list_page(
        self, path: str, after: str | None, limit: int
    ) -> tuple[builtins.list[str], bool]:
        """One listing from the first key after ``after``'s (S3's StartAfter): in key order,
        where a directory sorts as its name followed by ``/``."""
        prefix = self.layout.directory(path)
        # After every key of ``after`` itself, file or directory ("~" sorts after the name
        # grammar's characters).
        start_after = f"{prefix}{after}/~" if after else ""
        children: builtins.list[str] = []
        more = False
        truncated: builtins.list[bool] = []
        with translating(path):
            # ``limit`` keys a request (S3 gives at most 1000): whether more follow is the
            # answer's IsTruncated, so a page of 1000 is one request.
            async for objects, prefixes in self.bucket.list_pages(
                prefix, delimiter="/", start_after=start_after, page_size=limit, truncated=truncated
            ):
                keys = sorted([o.key for o in objects] + [p.rstrip("/") + "/" for p in prefixes])
                for key in keys:
                    child = self.layout.path(key.rstrip("/"))
                    if child is None or (after and child.rpartition("/")[2] == after):
                        continue
                    if len(children) == limit:
                        more = True
                        break
                    children.append(child)
                if more or (len(children) == limit and truncated[-1]):
                    more = True
                    break
        if not children and not more and after is None and path != "/":
            raise PathNotFound(path)
        return children, more

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return walk_listed(path, self.walk_files(path))

    async def walk_files(
        self, path: str, skip: Callable[[str], bool] | None = None
    ) -> AsyncIterator[builtins.list[FileInfo]]:
        with translating(path):
            async for objects, _ in self.bucket.list_pages(self.layout.directory(path)):
                files = [
                    FileInfo(file, obj.size, obj.modified, False, obj.etag.strip('"') or None)
                    for obj in objects
                    if (file := self.layout.path(obj.key)) is not None
                ]
                if files:
                    yield files

    async def delete(self, path: str) -> None:
        key = self.layout.key(path)
        below, pending = key + "/", key + PENDING_MARK

        def doomed(name: str) -> bool:
            # Not siblings that merely start alike (``/a/bc`` when deleting ``/a/b``).
            return name == key or name.startswith((below, pending))

        with translating(path):
            uploads = asyncio.ensure_future(self.bucket.list_uploads(key))
            found = False
            try:
                async for objects, _ in self.bucket.list_pages(key):
                    keys = [o.key for o in objects if doomed(o.key)]
                    if keys:
                        found = True
                        await self.bucket.delete_keys(keys)
            finally:
                listed = await uploads
            aborted = [u for u in listed if doomed(u.key)]
            await self._abort(aborted)
        if not (found or aborted):
            raise PathNotFound(path)

    # -- maintenance ------------------------------------------------------------------------

    async def purge_uncommitted(self, before: datetime, *, dry_run: bool = False) -> Sequence[str]:
        """Abort the multipart uploads below the root started before ``before``: those of
        upload sessions deleted by other means (Distribution's purge deletes the session's
        objects only) and of processes that died mid-copy."""
        with translating("/"):
            uploads = await self.bucket.list_uploads(self.layout.prefix)
            stale = [u for u in uploads if u.initiated is not None and u.initiated < before]
            if not dry_run:
                await self._abort(stale)
                if self._local_leases is not None:
                    await asyncio.to_thread(self._local_leases.purge, before.timestamp())
        return sorted({path for u in stale if (path := self.layout.path(u.key))})

    async def _abort(self, uploads: Sequence[Upload]) -> None:
        limit = asyncio.Semaphore(max(1, self.client.max_threads // 2))

        async def abort(key: str, upload_id: str) -> None:
            async with limit:
                await self.bucket.abort_upload(key, upload_id)

        await asyncio.gather(*(abort(u.key, u.upload_id) for u in uploads))

    async def close(self) -> None:
        await self.client.close()
