"""A content-addressed repository over a storage driver, as reflow's S3 repository.

Objects are named by the sha256 of their bytes and never change. A put streams into an
upload (hashing as it goes), then publishes it under its digest; the same bytes put twice are
stored once. Memory stays bounded whatever the size: bytes pass through in chunks, files are
read and written a part at a time by a few workers.

Collection and puts, from any process or machine sharing the storage:

- a collection writes a marker first and takes the storage's clock from it (``start``); it
  removes an object only if it is not live and was last written before ``start``, checked
  again under the object's lease (``StorageDriver.lease``) right before the delete;
- a put publishes under the same lease, and publishing always writes the object (a move of
  the upload onto it, or the direct write), so an object put again gets a new modification
  time. A put that completes while a collection runs is therefore never removed by it, and
  one that completed before the collection started must be in its live set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO

from wharf.cas._errors import DigestMismatch, ObjectNotFound
from wharf.cas._layout import LAYOUTS, Layout, StoredObject
from wharf.reference import Digest
from wharf.storage.driver import FileReader, FileWriter, LeaseBusy, PathNotFound, StorageDriver

__all__ = ["CollectResult", "Repository"]

MiB = 1 << 20
#: Bytes read or written per call; hashing a chunk this size goes to a thread.
CHUNK = 4 * MiB
_HASH_INLINE = 256 << 10
#: How long a publish or a collection waits for an object's lease held by another.
_LEASE_WAIT = 30.0


@dataclass(slots=True)
class CollectResult:
    """What a collection removed (or, dry, would remove)."""

    removed: list[Digest] = field(default_factory=list)
    removed_bytes: int = 0
    live: int = 0
    #: Not live, but written since the collection started (or held by a put).
    kept_recent: int = 0
    #: Uploads (and markers of collections) left by puts and collections that never ended.
    removed_uploads: list[str] = field(default_factory=list)


async def _update(hasher: hashlib._Hash, data: bytes | memoryview) -> None:
    if len(data) < _HASH_INLINE:
        hasher.update(data)
    else:  # hashlib releases the GIL on large buffers
        await asyncio.to_thread(hasher.update, data)


def _digest(text: str | Digest) -> Digest:
    return text if isinstance(text, Digest) else Digest.parse(text)


class Repository:
    """A content-addressed repository on ``driver`` (see :func:`wharf.cas.dial`)."""

    def __init__(self, driver: StorageDriver, *, layout: str = "objects", url: str = "") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r} (known: {', '.join(sorted(LAYOUTS))})")
        self.driver = driver
        self.layout: Layout = LAYOUTS[layout]
        self.url = url

    def __repr__(self) -> str:
        return f"<wharf.cas.Repository {self.url or self.driver.name} layout={self.layout.name}>"

    # -- reading ------------------------------------------------------------------------------

    async def stat(self, digest: str | Digest) -> StoredObject:
        """The object's size and modification time; ObjectNotFound when there is none."""
        checked = _digest(digest)
        try:
            info = await self.driver.stat(self.layout.object(checked))
        except PathNotFound:
            raise ObjectNotFound(checked) from None
        if info.is_dir:
            raise ObjectNotFound(checked)
        return StoredObject(checked, info.size, info.modified)

    async def contains(self, digest: str | Digest) -> bool:
        try:
            await self.stat(digest)
        except ObjectNotFound:
            return False
        return True

    async def get(self, digest: str | Digest, offset: int = 0) -> FileReader:
        """A reader of the object from ``offset``, to use with ``async with``."""
        checked = _digest(digest)
        try:
            return await self.driver.reader(self.layout.object(checked), offset)
        except PathNotFound:
            raise ObjectNotFound(checked) from None

    async def read(self, digest: str | Digest, *, max_size: int = 64 * MiB) -> bytes:
        """A small object's bytes, verified; ValueError above ``max_size``."""
        info = await self.stat(digest)
        if info.size > max_size:
            raise ValueError(f"object of {info.size} bytes is larger than max_size={max_size}")
        hasher = hashlib.new(info.digest.algorithm)
        parts = []
        async with await self.get(info.digest) as reader:
            async for chunk in reader.chunks(CHUNK, info.size + 1):
                await _update(hasher, chunk)
                parts.append(chunk)
        actual = Digest(info.digest.algorithm, hasher.hexdigest())
        if actual != info.digest:
            raise DigestMismatch(info.digest, actual)
        return b"".join(parts)

    async def objects(self) -> AsyncIterator[StoredObject]:
        """Every object, in no promised order."""
        async for stored in self.layout.objects(self.driver):
            yield stored

    # -- writing ------------------------------------------------------------------------------

    async def put(self, content: bytes | AsyncIterable[bytes] | BinaryIO) -> Digest:
        """Store bytes, an async iterable of chunks or a binary file object (read in a
        thread); the sha256 digest of what was stored."""
        upload = self.layout.upload(str(uuid.uuid4()))
        writer = await self.driver.writer(upload)
        hasher = hashlib.sha256()
        try:
            async for chunk in _chunks(content):
                await asyncio.gather(writer.write(chunk), _update(hasher, chunk))
            await writer.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(writer.cancel())
            raise
        digest = Digest("sha256", hasher.hexdigest())
        try:
            await self._publish(digest, upload)
        finally:
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(upload)
        return digest

    async def put_file(self, path: str | os.PathLike[str]) -> Digest:
        """Store a file: hashed first, then written straight to its place where the driver
        writes in place (S3: a multipart upload, parts sent concurrently), else uploaded and
        moved; the file's sha256 digest."""
        digest, size = await asyncio.to_thread(_hash_file, os.fspath(path))
        target = self.layout.object(digest)
        if self.driver.write_in_place:
            async with self._leased(target):
                writer = await self.driver.writer(target)
                await _send_file(path, writer, size)
            return digest
        upload = self.layout.upload(str(uuid.uuid4()))
        try:
            await _send_file(path, await self.driver.writer(upload), size)
            await self._publish(digest, upload)
        finally:
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(upload)
        return digest

    async def get_file(
        self,
        digest: str | Digest,
        path: str | os.PathLike[str],
        *,
        concurrency: int = 4,
        part_size: int = 32 * MiB,
        verify: bool = True,
    ) -> int:
        """Write the object to ``path`` (replaced atomically), read in ranges of
        ``part_size`` by ``concurrency`` workers; its size. With ``verify`` the file is hashed
        before it replaces ``path`` (DigestMismatch, and nothing written, when it is wrong)."""
        if concurrency < 1 or part_size < 1:
            raise ValueError("concurrency and part_size must be positive")
        info = await self.stat(digest)
        destination = os.fspath(path)
        temporary = f"{destination}.{secrets.token_hex(6)}.partial"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                await asyncio.to_thread(os.ftruncate, descriptor, info.size)
                ranges = asyncio.Queue[tuple[int, int]]()
                for start in range(0, info.size, part_size):
                    ranges.put_nowait((start, min(part_size, info.size - start)))
                workers = min(concurrency, ranges.qsize()) or 1
                await asyncio.gather(
                    *(self._fetch_ranges(info.digest, descriptor, ranges) for _ in range(workers))
                )
                await asyncio.to_thread(os.fsync, descriptor)
            finally:
                os.close(descriptor)
            if verify:
                actual, _ = await asyncio.to_thread(_hash_file, temporary, info.digest.algorithm)
                if actual != info.digest:
                    raise DigestMismatch(info.digest, actual)
            os.replace(temporary, destination)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return info.size

    async def _fetch_ranges(
        self, digest: Digest, descriptor: int, ranges: asyncio.Queue[tuple[int, int]]
    ) -> None:
        while not ranges.empty():
            start, length = ranges.get_nowait()
            async with await self.get(digest, start) as reader:
                offset = start
                async for chunk in reader.chunks(CHUNK, length):
                    await asyncio.to_thread(_pwrite_all, descriptor, chunk, offset)
                    offset += len(chunk)
            if offset != start + length:
                raise DigestMismatch(digest, f"an object shorter than {start + length} bytes")

    async def _publish(self, digest: Digest, upload: str) -> None:
        """Move a committed upload onto the object, under its lease: even when the object is
        there already, so that its modification time says a put just needed it."""
        target = self.layout.object(digest)
        async with self._leased(target):
            await self.driver.move(upload, target)

    @contextlib.asynccontextmanager
    async def _leased(self, target: str) -> AsyncIterator[None]:
        """The object's lease while it exists (none needed to create it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _LEASE_WAIT
        delay = 0.01
        while True:
            try:
                lease = await self.driver.lease(target)
            except PathNotFound:
                yield  # nothing to collect yet: whatever is written now is new
                return
            except LeaseBusy:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            async with lease:
                yield
            return

    # -- collection and copies ----------------------------------------------------------------

    async def collect(
        self,
        live: Container[Digest] | Container[str],
        *,
        dry_run: bool = False,
        grace: timedelta = timedelta(0),
        abandoned: timedelta | None = timedelta(days=1),
    ) -> CollectResult:
        """Remove every object not in ``live`` (digests, as :class:`Digest` or strings; any
        container: a set, a Bloom filter) that was last written before this collection
        started less ``grace``; with ``dry_run`` remove nothing and report what would go.

        Uploads started more than ``abandoned`` before (None: none), which no put can still
        be writing if no put takes that long, go too: the files of puts that never ended,
        and on S3 their multipart uploads (in the ``objects`` layout only, where the whole
        prefix is the repository's; a registry sharing the store purges its own)."""
        marker = f"{self.layout.collections()}/{uuid.uuid4()}"
        await self.driver.put_content(marker, b"")
        result = CollectResult()
        try:
            started = (await self.driver.stat(marker)).modified
            if started is None:
                raise RuntimeError(f"{self.driver.name} storage gives no modification times")
            before = started - grace
            async for stored in self.objects():
                if stored.digest in live or str(stored.digest) in live:
                    result.live += 1
                elif stored.modified is None or stored.modified >= before:
                    result.kept_recent += 1
                elif dry_run or await self._remove_unless_written(stored, before):
                    result.removed.append(stored.digest)
                    result.removed_bytes += stored.size
                else:
                    result.kept_recent += 1
            if abandoned is not None:
                result.removed_uploads = await self._remove_abandoned(
                    started - abandoned, marker, dry_run
                )
        finally:
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(marker)
        return result

    async def _remove_abandoned(self, before: datetime, marker: str, dry_run: bool) -> list[str]:
        removed: list[str] = []
        for directory in (self.layout.uploads(), self.layout.collections()):
            async for files in self.driver.walk_files(directory):
                for info in files:
                    if info.path == marker:
                        continue
                    if info.modified is None or info.modified >= before:
                        continue
                    if not dry_run:
                        with contextlib.suppress(PathNotFound):
                            await self.driver.delete(info.path)
                    removed.append(info.path)
        if self.layout.name == "objects":
            removed += await self.driver.purge_uncommitted(before, dry_run=dry_run)
        return removed

    async def _remove_unless_written(self, stored: StoredObject, before: datetime) -> bool:
        target = self.layout.object(stored.digest)
        doomed, own_directory = self.layout.removal(stored.digest)
        try:
            lease = await self.driver.lease(target)
        except (PathNotFound, LeaseBusy):
            return False  # gone, or a put is publishing it
        deleted = False
        try:
            info = await self.driver.stat(target)
            if info.modified is not None and info.modified < before:
                await self.driver.delete(doomed)
                deleted = True
        except PathNotFound:
            pass
        finally:
            await lease.release(deleted=deleted and own_directory)
        return deleted

    async def copy_to(self, other: Repository, digest: str | Digest) -> bool:
        """Copy an object into ``other``: server-side when both repositories are on one store
        (an S3 endpoint and bucket, a local filesystem, one in-memory store), else streamed
        and verified. True when the copy was server-side."""
        from wharf.cas._copy import server_copy

        info = await self.stat(digest)
        source = self.layout.object(info.digest)
        target = other.layout.object(info.digest)
        if self.driver is other.driver and source == target:
            return True  # one and the same object
        async with other._leased(target):
            if await server_copy(self.driver, source, other.driver, target):
                return True
        async with await self.get(info.digest) as reader:
            copied = await other.put(reader.chunks(CHUNK, info.size + 1))
        if copied != info.digest:
            raise DigestMismatch(info.digest, copied)
        return False


async def _chunks(content: bytes | AsyncIterable[bytes] | BinaryIO) -> AsyncIterator[bytes]:
    if isinstance(content, bytes | bytearray | memoryview):
        view = memoryview(content)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])
        return
    if isinstance(content, AsyncIterable):
        async for chunk in content:
            if chunk:
                yield chunk
        return
    while chunk := await asyncio.to_thread(content.read, CHUNK):
        yield chunk


def _hash_file(path: str, algorithm: str = "sha256") -> tuple[Digest, int]:
    hasher = hashlib.new(algorithm)
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return Digest(algorithm, hasher.hexdigest()), size


def _pwrite_all(descriptor: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(descriptor, view, offset)
        view, offset = view[written:], offset + written


async def _send_file(path: str | os.PathLike[str], writer: FileWriter, size: int) -> None:
    """Stream a file into a writer, a chunk read ahead while the last is written; the driver
    sends what it buffers concurrently (S3: several parts at once)."""
    try:
        file = await asyncio.to_thread(open, path, "rb")
        try:
            sent = 0
            chunk = await asyncio.to_thread(file.read, CHUNK)
            while chunk:
                following = asyncio.ensure_future(asyncio.to_thread(file.read, CHUNK))
                try:
                    await writer.write(chunk)
                    sent += len(chunk)
                finally:
                    chunk = await following
        finally:
            await asyncio.to_thread(file.close)
        if sent != size:
            raise DigestMismatch(f"{size} bytes", f"{sent} bytes: the file changed")
        await writer.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(writer.cancel())
        raise
