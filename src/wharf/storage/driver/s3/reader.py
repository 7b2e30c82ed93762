"""The S3 file reader: ranged GETs from an offset, several in flight for large files.

The first GET asks for ``chunk`` bytes from the offset and learns the object's size and
ETag from the answer. Once the caller reads, up to ``ahead`` further ranges are requested in
parallel (as reflow's S3 repository downloads), so a pull is not held to the speed of one
S3 stream; memory stays bounded at ``(ahead + 1) * chunk`` per reader. Every later range
carries ``If-Match`` with the first ETag: an object replaced while it is read fails the read
instead of mixing two versions.

An offset at the end gives an empty reader; S3 refuses such a range (416), so a HEAD then
tells the end (empty reader) from past it (InvalidOffset).
"""

from __future__ import annotations

import asyncio
from collections import deque

from wharf.storage.driver.base import DriverError, FileReader, InvalidOffset
from wharf.storage.driver.s3.bucket import Bucket, Fetched
from wharf.storage.driver.s3.client import S3Error, error_code, error_status, translate

__all__ = ["READ_AHEAD", "READ_CHUNK", "S3Reader", "open_reader"]

#: Bytes per ranged GET. 8 MiB amortises a request's latency on S3 (tens of ms) while
#: the first bytes still arrive quickly.
READ_CHUNK = 8 << 20
#: Ranged GETs in flight ahead of the caller.
READ_AHEAD = 4


async def open_reader(
    bucket: Bucket,
    path: str,
    key: str,
    offset: int,
    *,
    chunk: int = READ_CHUNK,
    ahead: int = READ_AHEAD,
) -> S3Reader:
    if offset < 0:
        raise InvalidOffset(path, offset)
    try:
        first = await bucket.fetch(key, offset, chunk)
    except S3Error as exc:
        if error_code(exc) != "InvalidRange" and error_status(exc) != 416:
            raise translate(exc, path) from exc
        try:
            info = await bucket.head(key)
        except S3Error as head_exc:
            raise translate(head_exc, path) from head_exc
        if offset != info.size:
            raise InvalidOffset(path, offset) from exc
        first = Fetched(b"", info.size, info.etag)
    if offset > first.total:
        raise InvalidOffset(path, offset)
    return S3Reader(bucket, path, key, first, offset, chunk, ahead)


class S3Reader(FileReader):
    def __init__(
        self,
        bucket: Bucket,
        path: str,
        key: str,
        first: Fetched,
        offset: int,
        chunk: int,
        ahead: int,
    ) -> None:
        self._bucket = bucket
        self._path = path
        self._key = key
        self._data = first.data
        self._position = 0  # in self._data
        self._next = offset + len(first.data)  # the first byte not yet requested
        self._total = first.total
        self._etag = first.etag
        self._chunk = chunk
        self._ahead = ahead
        self._queue: deque[asyncio.Task[Fetched]] = deque()
        self._closed = False

    async def read(self, size: int) -> bytes:
        if self._closed:
            raise DriverError(f"reader closed: {self._path}", path=self._path)
        if size < 0:
            parts = []
            while part := await self.read(self._chunk):
                parts.append(part)
            return b"".join(parts)
        if size == 0:
            return b""
        while self._position >= len(self._data):
            if not self._queue and self._next >= self._total:
                return b""
            self._fill()
            fetched = await self._receive(self._queue.popleft())
            self._data, self._position = fetched.data, 0
        self._fill()
        start, end = self._position, min(self._position + size, len(self._data))
        self._position = end
        if start == 0 and end == len(self._data):
            return self._data  # the whole range: no copy
        return self._data[start:end]

    def _fill(self) -> None:
        while len(self._queue) < self._ahead and self._next < self._total:
            length = min(self._chunk, self._total - self._next)
            fetch = self._bucket.fetch(self._key, self._next, length, if_match=self._etag)
            self._queue.append(asyncio.ensure_future(fetch))
            self._next += length

    async def _receive(self, task: asyncio.Task[Fetched]) -> Fetched:
        try:
            fetched = await task
        except S3Error as exc:
            if error_status(exc) == 412 or error_code(exc) == "PreconditionFailed":
                message = f"changed while being read: {self._path}"
                raise DriverError(message, path=self._path) from exc
            raise translate(exc, self._path) from exc
        if not fetched.data:
            raise DriverError(f"shorter than its size while read: {self._path}", path=self._path)
        return fetched

    async def close(self) -> None:
        self._closed = True
        self._data = b""
        queue, self._queue = self._queue, deque()
        for task in queue:
            task.cancel()
        await asyncio.gather(*queue, return_exceptions=True)
