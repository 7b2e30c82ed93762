"""The Azure file reader: ranged GETs from an offset, several in flight for large blobs.

As the S3 reader: the first GET asks for ``chunk`` bytes from the offset and learns the
blob's size and ETag; once the caller reads, up to ``ahead`` further ranges are requested in
parallel, each only from that ETag (``If-Match``), so a blob replaced while it is read fails
the read instead of mixing two versions. Memory is bounded per reader at
``(ahead + 1) * chunk`` and per driver by a ``ReadBudget`` its readers share: a range beyond
the one needed next is requested only while the budget has room.

An offset at the end gives an empty reader; Azure refuses such a range (416), so the blob's
properties then tell the end (empty reader) from past it (InvalidOffset).
"""

from __future__ import annotations

import asyncio
from collections import deque

from wharf.storage.driver.azure.blobs import Blobs, Fetched
from wharf.storage.driver.azure.client import AzureError, error_status, translate
from wharf.storage.driver.base import DriverError, FileReader, InvalidOffset

__all__ = ["READ_AHEAD", "READ_BUDGET", "READ_CHUNK", "AzureReader", "ReadBudget", "open_reader"]

#: Bytes per ranged GET.
READ_CHUNK = 16 << 20
#: Ranged GETs in flight ahead of the caller, per reader.
READ_AHEAD = 2
#: Read-ahead bytes all readers of one driver may hold.
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
    blobs: Blobs,
    path: str,
    name: str,
    offset: int,
    *,
    chunk: int = READ_CHUNK,
    ahead: int = READ_AHEAD,
    budget: ReadBudget | None = None,
) -> AzureReader:
    if offset < 0:
        raise InvalidOffset(path, offset)
    try:
        first = await blobs.fetch(name, offset, chunk)
    except AzureError as exc:
        if error_status(exc) != 416:
            raise translate(exc, path) from exc
        try:
            info = await blobs.head(name)
        except AzureError as head_exc:
            raise translate(head_exc, path) from head_exc
        if offset != info.size:
            raise InvalidOffset(path, offset) from exc
        first = Fetched(b"", info.size, info.etag)
    if offset > first.total:
        raise InvalidOffset(path, offset)
    return AzureReader(blobs, path, name, first, offset, chunk, ahead, budget or ReadBudget())


class AzureReader(FileReader):
    def __init__(
        self,
        blobs: Blobs,
        path: str,
        name: str,
        first: Fetched,
        offset: int,
        chunk: int,
        ahead: int,
        budget: ReadBudget,
    ) -> None:
        self._blobs = blobs
        self._path = path
        self._name = name
        self._data = first.data
        self._position = 0  # in self._data
        self._next = offset + len(first.data)  # the first byte not yet requested
        self._total = first.total
        self._etag = first.etag
        self._chunk = chunk
        self._ahead = max(1, ahead)
        self._budget = budget
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
            fetch = self._blobs.fetch(self._name, self._next, length, etag=self._etag)
            self._queue.append((asyncio.ensure_future(fetch), budgeted))
            self._next += length

    async def _receive(self, future: asyncio.Future[Fetched]) -> Fetched:
        try:
            fetched = await future
        except AzureError as exc:
            if error_status(exc) == 412:
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
