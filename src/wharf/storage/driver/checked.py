"""The one wrapper around every driver, as Distribution's ``base`` package: drivers stay plain.

It checks every path against the grammar before the driver sees it (``list``, ``walk`` and
``stat`` also take ``/``), names the driver in every DriverError passing through, and turns any
other OSError a driver lets out into a DriverError raised ``from`` it, so that the layers above
handle one family of errors. Readers and writers are wrapped the same way, since a full disk
shows up in ``write``. When ``observe`` is set, it is told how long each call took and whether
it failed (a missing path is an answer, not a failure): the storage latency metrics.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from time import perf_counter
from types import TracebackType

from wharf.storage.driver.base import (
    DriverError,
    FileInfo,
    FileReader,
    FileWriter,
    InvalidPath,
    Lease,
    Listings,
    PathNotFound,
    ResumeState,
    StorageDriver,
    check_path,
)

__all__ = ["CheckedDriver", "Observer"]

#: (driver, operation, seconds, failed)
Observer = Callable[[str, str, float, bool], None]


class _Translate:
    """Context manager naming DriverErrors and mapping OSErrors; cheaper than a generator."""

    __slots__ = ("_driver", "_observe", "_operation", "_path", "_started")

    def __init__(
        self, driver: str, operation: str, path: str, observe: Observer | None = None
    ) -> None:
        self._driver = driver
        self._operation = operation
        self._path = path
        self._observe = observe

    def __enter__(self) -> None:
        if self._observe is not None:
            self._started = perf_counter()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._observe is not None:
            failed = exc is not None and not isinstance(exc, PathNotFound)
            self._observe(self._driver, self._operation, perf_counter() - self._started, failed)
        if isinstance(exc, DriverError):
            _name(exc, self._driver)
        elif isinstance(exc, OSError):
            message = f"{self._operation} {self._path}: {exc.strerror or exc}"
            raise DriverError(message, path=self._path, driver=self._driver) from exc


def _name(exc: DriverError, driver: str) -> None:
    if not exc.driver:
        exc.driver = driver
        if exc.args:
            exc.args = (f"{driver}: {exc.args[0]}", *exc.args[1:])


class CheckedDriver(StorageDriver):
    """Wraps ``inner``; its ``name`` is the inner driver's."""

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name
        self.write_in_place = inner.write_in_place
        self.exclusive_leases = inner.exclusive_leases
        self.observe: Observer | None = None

    def _check(self, path: str, *, allow_root: bool = False) -> None:
        try:
            check_path(path, allow_root=allow_root)
        except InvalidPath as exc:
            _name(exc, self.name)
            raise

    async def get_content(self, path: str) -> bytes:
        self._check(path)
        with _Translate(self.name, "get_content", path, self.observe):
            return await self.inner.get_content(path)

    async def put_content(self, path: str, content: bytes) -> None:
        self._check(path)
        with _Translate(self.name, "put_content", path, self.observe):
            await self.inner.put_content(path, content)

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        self._check(path)
        with _Translate(self.name, "reader", path, self.observe):
            inner = await self.inner.reader(path, offset)
            return _CheckedReader(inner, self.name, path, self.observe)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        self._check(path)
        with _Translate(self.name, "writer", path, self.observe):
            inner = await self.inner.writer(path, append)
            return _CheckedWriter(inner, self.name, path, self.observe)

    async def resume_writer(self, path: str, state: ResumeState | None) -> FileWriter:
        self._check(path)
        with _Translate(self.name, "resume_writer", path, self.observe):
            inner = await self.inner.resume_writer(path, state)
            return _CheckedWriter(inner, self.name, path, self.observe)

    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        self._check(path)
        with _Translate(self.name, "lease", path, self.observe):
            return await self.inner.lease(path, after=after)

    async def stat(self, path: str) -> FileInfo:
        self._check(path, allow_root=True)
        with _Translate(self.name, "stat", path, self.observe):
            return await self.inner.stat(path)

    async def list(self, path: str) -> list[str]:
        self._check(path, allow_root=True)
        with _Translate(self.name, "list", path, self.observe):
            return await self.inner.list(path)

    async def list_page(
        self, path: str, after: str | None, limit: int
    ) -> tuple[builtins.list[str], bool]:
        self._check(path, allow_root=True)
        with _Translate(self.name, "list", path, self.observe):
            return await self.inner.list_page(path, after, limit)

    async def list_many(self, directories: Sequence[str]) -> Listings:
        for directory in directories:
            self._check(directory, allow_root=True)
        where = directories[0] if len(directories) == 1 else f"{len(directories)} directories"
        with _Translate(self.name, "list_many", where, self.observe):
            return await self.inner.list_many(directories)

    async def listing_version(self, path: str) -> tuple[int, int] | None:
        self._check(path, allow_root=True)
        with _Translate(self.name, "listing_version", path, self.observe):
            return await self.inner.listing_version(path)

    async def get_many(self, paths: Sequence[str]) -> builtins.list[bytes | None]:
        for path in paths:
            self._check(path)
        where = paths[0] if len(paths) == 1 else f"{len(paths)} files"
        with _Translate(self.name, "get_many", where, self.observe):
            return await self.inner.get_many(paths)

    async def move(self, source: str, destination: str) -> None:
        self._check(source)
        self._check(destination)
        with _Translate(self.name, "move", f"{source} -> {destination}", self.observe):
            await self.inner.move(source, destination)

    async def concatenate(self, sources: Sequence[str], destination: str) -> None:
        for source in sources:
            self._check(source)
        self._check(destination)
        with _Translate(self.name, "concatenate", destination, self.observe):
            await self.inner.concatenate(sources, destination)

    async def delete(self, path: str) -> None:
        self._check(path)
        with _Translate(self.name, "delete", path, self.observe):
            await self.inner.delete(path)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        self._check(path, allow_root=True)
        with _Translate(self.name, "walk", path):
            async for info in self.inner.walk(path):
                yield info

    async def walk_files(
        self, path: str, skip: Callable[[str], bool] | None = None
    ) -> AsyncIterator[builtins.list[FileInfo]]:
        self._check(path, allow_root=True)
        with _Translate(self.name, "walk_files", path):
            async for batch in self.inner.walk_files(path, skip):
                yield batch

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        self._check(path)
        with _Translate(self.name, "redirect_url", path, self.observe):
            return await self.inner.redirect_url(path, method)

    async def purge_uncommitted(self, before: datetime, *, dry_run: bool = False) -> Sequence[str]:
        with _Translate(self.name, "purge_uncommitted", "/", self.observe):
            return await self.inner.purge_uncommitted(before, dry_run=dry_run)

    async def close(self) -> None:
        with _Translate(self.name, "close", "/"):
            await self.inner.close()


class _CheckedReader(FileReader):
    def __init__(
        self, inner: FileReader, driver: str, path: str, observe: Observer | None = None
    ) -> None:
        self._observe = observe
        self._inner = inner
        self._driver = driver
        self._path = path

    async def read(self, size: int) -> bytes:
        with _Translate(self._driver, "read", self._path, self._observe):
            return await self._inner.read(size)

    def local_file(self) -> tuple[int, int] | None:
        return self._inner.local_file()

    async def close(self) -> None:
        with _Translate(self._driver, "close", self._path):
            await self._inner.close()


class _CheckedWriter(FileWriter):
    def __init__(
        self, inner: FileWriter, driver: str, path: str, observe: Observer | None = None
    ) -> None:
        self._observe = observe
        self._inner = inner
        self._driver = driver
        self._path = path

    @property
    def size(self) -> int:
        return self._inner.size

    def announce(self, size: int) -> None:
        self._inner.announce(size)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        with _Translate(self._driver, "write", self._path, self._observe):
            await self._inner.write(data)

    async def close(self) -> None:
        with _Translate(self._driver, "close", self._path, self._observe):
            await self._inner.close()

    async def cancel(self) -> None:
        with _Translate(self._driver, "cancel", self._path, self._observe):
            await self._inner.cancel()

    async def commit(self) -> None:
        with _Translate(self._driver, "commit", self._path, self._observe):
            await self._inner.commit()

    @property
    def served_size(self) -> int | None:
        return self._inner.served_size

    def resume_state(self) -> ResumeState | None:
        return self._inner.resume_state()
