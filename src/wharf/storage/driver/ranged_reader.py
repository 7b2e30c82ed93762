"""Reading a remote file as ranged GETs, several in flight: what the S3 and Azure readers share.

The first GET asks for ``chunk`` bytes from the offset and learns the file's size and ETag
from the answer. Once the caller reads, up to ``ahead`` further ranges are requested in
parallel, each only from that ETag (``If-Match``), so a file replaced while it is read fails
the read instead of mixing two versions. Memory is bounded twice: per reader at
``(ahead + 1) * chunk``, and per driver by a ``ReadBudget`` its readers share: a range beyond
the one needed next is requested only while the budget has room, so many slow clients degrade
to one range in flight each instead of holding ``ahead`` ranges each.

An offset at the end gives an empty reader; the stores refuse such a range (416), so the
file's properties then tell the end (an empty reader) from past it (InvalidOffset).
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import ClassVar, Protocol

from wharf.storage.driver.base import DriverError, FileReader, InvalidOffset

__all__ = [
    "READ_AHEAD",
    "READ_BUDGET",
    "READ_CHUNK",
    "Range",
    "RangedReader",
    "ReadBudget",
    "first_range",
]

#: Bytes per ranged GET.
READ_CHUNK = 16 << 20
#: Ranged GETs in flight ahead of the caller, per reader.
READ_AHEAD = 2
#: Read-ahead bytes all readers of one driver may hold (requested or received, not yet read).
READ_BUDGET = 256 << 20


#: A store's own error types, as ``except`` takes them.
StoreErrors = type[BaseException] | tuple[type[BaseException], ...]


class Range(Protocol):
    """One ranged GET's answer."""

    @property
    def data(self) -> bytes: ...
    @property
    def total(self) -> int: ...  # the file's size
    @property
    def etag(self) -> str: ...


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


class _EmptyRange:
    __slots__ = ("data", "etag", "total")

    def __init__(self, total: int, etag: str) -> None:
        self.data, self.total, self.etag = b"", total, etag


async def first_range(
    path: str,
    offset: int,
    fetch: Callable[[], Awaitable[Range]],
    head: Callable[[], Awaitable[tuple[int, str]]],
    *,
    store_error: StoreErrors,
    refused: Callable[[BaseException], bool],
    translate: Callable[[BaseException, str], DriverError],
) -> Range:
    """The first range from ``offset``: ``fetch`` it; where the store ``refused`` the range
    (an offset at or past the end), ``head`` (size, ETag) tells the end from past it."""
    if offset < 0:
        raise InvalidOffset(path, offset)
    first: Range
    try:
        first = await fetch()
    except store_error as exc:
        if not refused(exc):
            raise translate(exc, path) from exc
        try:
            size, etag = await head()
        except store_error as head_exc:
            raise translate(head_exc, path) from head_exc
        if offset != size:
            raise InvalidOffset(path, offset) from exc
        first = _EmptyRange(size, etag)
    if offset > first.total:
        raise InvalidOffset(path, offset)
    return first


class RangedReader(FileReader):
    """A store's reader sets ``store_error`` and implements ``_request`` and ``_failure``."""

    store_error: ClassVar[StoreErrors]

    def __init__(
        self, path: str, first: Range, offset: int, chunk: int, ahead: int, budget: ReadBudget
    ) -> None:
        self._path = path
        self._data = first.data
        self._position = 0  # in self._data
        self._next = offset + len(first.data)  # the first byte not yet requested
        self._total = first.total
        self._etag = first.etag
        self._chunk = chunk
        self._ahead = max(1, ahead)  # one range at least, or nothing would ever come
        self._budget = budget
        # Ranges requested, in order, with the budget bytes each holds.
        self._queue: deque[tuple[asyncio.Future[Range], int]] = deque()
        self._closed = False

    @abstractmethod
    def _request(self, offset: int, length: int) -> Awaitable[Range]:
        """A GET of ``length`` bytes from ``offset``, only if the ETag is still ``_etag``."""

    @abstractmethod
    def _failure(self, error: BaseException) -> DriverError:
        """The driver contract's error for a store error of a ranged GET."""

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
            fetch = self._request(self._next, length)
            self._queue.append((asyncio.ensure_future(fetch), budgeted))
            self._next += length

    async def _receive(self, future: asyncio.Future[Range]) -> Range:
        try:
            fetched = await future
        except self.store_error as exc:
            raise self._failure(exc) from exc
        if not fetched.data:
            raise DriverError(f"shorter than its size while read: {self._path}", path=self._path)
        return fetched

    def _changed(self) -> DriverError:
        return DriverError(f"changed while being read: {self._path}", path=self._path)

    async def close(self) -> None:
        self._closed = True
        self._data = b""
        queue, self._queue = self._queue, deque()
        for future, budgeted in queue:
            future.cancel()
            self._budget.give(budgeted)
        await asyncio.gather(*(future for future, _ in queue), return_exceptions=True)
