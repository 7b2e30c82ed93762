"""CheckedDriver: paths checked before the driver sees them, errors named and translated."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from wharf.storage.driver import (
    DriverError,
    FileInfo,
    FileReader,
    FileWriter,
    InvalidPath,
    Lease,
    PathNotFound,
    StorageDriver,
)
from wharf.storage.driver.checked import CheckedDriver


class _Failing(StorageDriver):
    """Raises what it is told to from every method, and records the calls it gets."""

    name = "failing"

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls: list[str] = []

    def _fail(self, call: str) -> None:
        self.calls.append(call)
        raise self.error

    async def get_content(self, path: str) -> bytes:
        self._fail("get_content")
        return b""

    async def put_content(self, path: str, content: bytes) -> None:
        self._fail("put_content")

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        return _FailingReader(self)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        return _FailingWriter(self)

    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        self._fail("lease")
        raise AssertionError

    async def stat(self, path: str) -> FileInfo:
        self._fail("stat")
        raise AssertionError

    async def list(self, path: str) -> list[str]:
        self._fail("list")
        return []

    async def move(self, source: str, destination: str) -> None:
        self._fail("move")

    async def delete(self, path: str) -> None:
        self._fail("delete")

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        yield FileInfo("/a", 0, None, True)
        self._fail("walk")


class _FailingReader(FileReader):
    def __init__(self, driver: _Failing) -> None:
        self.driver = driver

    async def read(self, size: int) -> bytes:
        self.driver._fail("read")
        return b""

    async def close(self) -> None:
        pass


class _FailingWriter(FileWriter):
    def __init__(self, driver: _Failing) -> None:
        self.driver = driver

    @property
    def size(self) -> int:
        return 7

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.driver._fail("write")

    async def close(self) -> None:
        pass

    async def cancel(self) -> None:
        self.driver._fail("cancel")

    async def commit(self) -> None:
        self.driver._fail("commit")


async def test_invalid_paths_never_reach_the_driver() -> None:
    inner = _Failing(AssertionError("reached"))
    driver = CheckedDriver(inner)
    with pytest.raises(InvalidPath) as exc:
        await driver.get_content("/a/../b")
    assert exc.value.driver == "failing"
    assert str(exc.value).startswith("failing: invalid path")
    with pytest.raises(InvalidPath):
        await driver.move("/a", "/b/")
    with pytest.raises(InvalidPath):
        await driver.delete("/")
    assert inner.calls == []


async def test_driver_errors_are_named_once() -> None:
    driver = CheckedDriver(_Failing(PathNotFound("/a")))
    with pytest.raises(PathNotFound) as exc:
        await driver.get_content("/a")
    assert (exc.value.driver, exc.value.path) == ("failing", "/a")
    assert str(exc.value) == "failing: path not found: /a"
    named = CheckedDriver(_Failing(PathNotFound("/a", driver="other")))
    with pytest.raises(PathNotFound, match=r"^other: path not found"):
        await named.stat("/a")


async def test_os_errors_become_driver_errors() -> None:
    error = OSError(errno.ENOSPC, "No space left on device")
    driver = CheckedDriver(_Failing(error))
    with pytest.raises(DriverError) as exc:
        await driver.put_content("/a", b"x")
    assert exc.value.__cause__ is error
    assert (exc.value.driver, exc.value.path) == ("failing", "/a")
    assert str(exc.value) == "failing: put_content /a: No space left on device"
    writer = await driver.writer("/w")
    assert writer.size == 7
    calls: list[Callable[[], Awaitable[None]]] = [
        lambda: writer.write(b"x"),
        writer.commit,
        writer.cancel,
    ]
    for call in calls:
        with pytest.raises(DriverError, match="No space left") as exc:
            await call()
        assert exc.value.__cause__ is error
    reader = await driver.reader("/r")
    with pytest.raises(DriverError, match="read /r"):
        await reader.read(10)


async def test_walk_is_checked_and_translated() -> None:
    driver = CheckedDriver(_Failing(PermissionError(errno.EACCES, "Permission denied")))
    with pytest.raises(InvalidPath):
        async for _ in driver.walk("a"):
            pass
    walk = driver.walk("/")
    assert (await anext(walk)).path == "/a"
    with pytest.raises(DriverError, match="walk /: Permission denied"):
        await anext(walk)


async def test_other_errors_pass_untouched() -> None:
    driver = CheckedDriver(_Failing(KeyError("bug")))
    with pytest.raises(KeyError):
        await driver.list("/")
