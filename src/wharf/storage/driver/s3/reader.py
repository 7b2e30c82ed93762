"""The S3 file reader: ranged GETs from an offset, several in flight for large files.

The first GET asks for ``chunk`` bytes from the offset and learns the object's size and
ETag from the answer. Once the caller reads, up to ``ahead`` further ranges are requested in
parallel (as reflow's S3 repository downloads), so a pull is not held to the speed of one
S3 stream. Memory is bounded twice: per reader at ``(ahead + 1) * chunk``, and per driver by
a ``ReadBudget`` shared by its readers: a range beyond the one the reader needs next is
requested only while the budget has room, so many slow clients degrade to one range in
flight each instead of holding ``ahead`` ranges each. Every later range carries ``If-Match``
with the first ETag: an object replaced while it is read fails the read instead of mixing
two versions.

Measured on loopback with 128 MiB blobs (MB/s, moto / Swift): 8 MiB ranges one ahead
81 / 180, four ahead 79 / 146; 16 MiB four ahead 127 / 292; 32 MiB four ahead 239 / 303.
Both servers pay per request, so fewer, larger ranges win. In benchmark runs against
docker-registry on Swift, two ahead pulled 256 MiB at 1.03x/1.11x of its speed with one
stream and 1.01x/1.05x with four, four ahead at 0.94x/0.95x and 1.06x/1.01x, with more
server CPU per GB: the store's proxy shares the machine, and fewer ranges in flight leave it
more. 16 MiB two ahead keeps a reader's memory at 48 MiB and still keeps three ranges in
flight, which on S3 proper is three connections' worth of throughput per stream.

An offset at the end gives an empty reader; S3 refuses such a range (416), so a HEAD then
tells the end (empty reader) from past it (InvalidOffset).
"""

from __future__ import annotations

import asyncio
from collections import deque

from wharf.storage.driver.base import DriverError, FileReader, InvalidOffset
from wharf.storage.driver.s3.bucket import Bucket, Fetched
from wharf.storage.driver.s3.client import S3Error, error_code, error_status, translate

__all__ = ["READ_AHEAD", "READ_BUDGET", "READ_CHUNK", "ReadBudget", "S3Reader", "open_reader"]

#: Bytes per ranged GET.
READ_CHUNK = 16 << 20
#: Ranged GETs in flight ahead of the caller, per reader.
READ_AHEAD = 2
#: Read-ahead bytes all readers of one driver may hold (requested or received, not yet read).
READ_BUDGET = 256 << 20


class ReadBudget:
    """Read-ahead bytes left for the readers of one driver (one event loop: no lock)."""

    def __init__(self, limit: int = READ_BUDGET) -> None:
        self.available = limit

    def take(self, size: int) -> bool:
        if size > self.available:
            return False
        self.available -= size
        return True

    def give(self, size: int) -> None:
        self.available += size


async def open_reader(
    bucket: Bucket,
    path: str,
    key: str,
    offset: int,
    *,
    chunk: int = READ_CHUNK,
    ahead: int = READ_AHEAD,
    budget: ReadBudget | None = None,
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
    return S3Reader(bucket, path, key, first, offset, chunk, ahead, budget or ReadBudget())


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
        budget: ReadBudget,
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
        self._ahead = max(1, ahead)  # one range at least, or nothing would ever come
        self._budget = budget
        # Ranges requested, in order, with the budget bytes each holds.
        self._queue: deque[tuple[asyncio.Future[Fetched], int]] = deque()
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
            future, budgeted = self._queue.popleft()
            self._budget.give(budgeted)
            fetched = await self._receive(future)
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
            # The range needed next is always requested; the others only within budget.
            budgeted = length if self._queue else 0
            if budgeted and not self._budget.take(budgeted):
                return
            fetch = self._bucket.fetch(self._key, self._next, length, if_match=self._etag)
            self._queue.append((asyncio.ensure_future(fetch), budgeted))
            self._next += length

    async def _receive(self, future: asyncio.Future[Fetched]) -> Fetched:
        try:
            fetched = await future
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
        for future, budgeted in queue:
            future.cancel()
            self._budget.give(budgeted)
        await asyncio.gather(*(future for future, _ in queue), return_exceptions=True)
