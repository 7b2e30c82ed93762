"""The storage driver contract, ported from Distribution's ``testsuites.go``.

A driver opts in with a small test module that subclasses ``DriverContract`` and provides a
``driver`` fixture::

    class TestFilesystem(DriverContract):
        @pytest.fixture
        async def driver(self, tmp_path: Path) -> AsyncIterator[StorageDriver]:
            config = StorageConfig("filesystem", {"rootdirectory": str(tmp_path)})
            driver = create_driver(config)
            yield driver
            await driver.close()

The fixture yields a fresh, empty driver for each test (a new directory, bucket or key prefix),
built by ``create_driver`` so that it is wrapped as the registry uses it (errors must name the
driver), and may be parametrised (``@pytest.fixture(params=[...])``) to run the suite against
several servers. The attributes of ``ContractSettings`` tune the suite for slow or coarse
backends (an S3 driver sets ``mtime_resolution = 1.1``, its Last-Modified having one-second
resolution). ``WHARF_TEST_LARGE_SIZE`` (bytes) sets the size of the large stream test, 64 MiB
by default (Distribution uses 5 GiB).

Beyond Distribution's suite, it pins down what wharf relies on: ``writer(path, append=True)``
raises PathNotFound when there is nothing to continue; reading at the end is empty and past it
InvalidOffset; a writer is final after ``commit`` or ``cancel`` while ``close`` is always
allowed; ``put_content`` replaces atomically under concurrent readers; and, for drivers that
claim ``write_in_place``, what it promises.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Awaitable, Callable

import pytest

from tests.storage.driver.contract_lease import LeaseContract
from tests.storage.driver.contract_support import (
    MiB,
    assert_error,
    random_bytes,
    random_name,
    random_path,
    read_all,
)
from tests.storage.driver.contract_tree import TreeContract
from wharf.storage.driver import (
    DriverError,
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
)

__all__ = ["DriverContract", "random_bytes", "random_name", "random_path", "read_all"]

_CONTENTS = {
    "empty": b"",
    "tiny": b"a",
    "unicode": "\u00df".encode(),
    "small": random_bytes(32),
    "1MiB": random_bytes(MiB),
    "non-utf8": b"\x80\x80\x80\x80",
}
_VALID_PATHS = [
    "/a", "/2", "/aa", "/a.a", "/0-9/abcdefg", "/abcdefg/z.75", "/abc/1.2.3.4.5-6_zyx/123.z/4",
    "/docker/docker-registry", "/123.abc", "/abc./abc", "/.abc", "/a--b", "/a-.b", "/_.abc",
    "/Docker/docker-registry", "/Abc/Cba",
]  # fmt: skip
_INVALID_PATHS = ["", "/", "abc", "123.abc", "//bcd", "/abc_123/", "/a/../b", "/a/./b", "/a b"]


class DriverContract(TreeContract, LeaseContract):
    """Every test takes a fresh ``driver``; subclasses provide that fixture. Directory tests
    are in ``TreeContract``, lease tests in ``LeaseContract``, tuning knobs in
    ``ContractSettings``."""

    # -- paths ------------------------------------------------------------------------------

    async def test_root_exists(self, driver: StorageDriver) -> None:
        assert await driver.list("/") == []

    async def test_valid_paths(self, driver: StorageDriver) -> None:
        contents = random_bytes(64)
        for path in _VALID_PATHS:
            await driver.put_content(path, contents)
            assert await driver.get_content(path) == contents

    @pytest.mark.parametrize("path", _INVALID_PATHS)
    async def test_invalid_paths(self, driver: StorageDriver, path: str) -> None:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: driver.put_content(path, b"x"),
            lambda: driver.get_content(path),
            lambda: driver.get_many(["/valid", path]),
            lambda: driver.reader(path),
            lambda: driver.writer(path),
            lambda: driver.move(path, "/valid"),
            lambda: driver.move("/valid", path),
            lambda: driver.delete(path),
            lambda: driver.redirect_url(path),
        ]
        if path != "/":
            calls += [
                lambda: driver.stat(path),
                lambda: driver.list(path),
                lambda: driver.list_many(["/valid", path]),
                lambda: _drain(driver, path),
            ]
        for call in calls:
            with pytest.raises(InvalidPath) as exc:
                await call()
            assert_error(exc, driver, path)
        assert await driver.list("/") == []

    async def test_root_is_accepted_where_a_directory_is(self, driver: StorageDriver) -> None:
        await driver.put_content("/a/b", b"x")
        assert await driver.list("/") == ["/a"]
        assert [info.path async for info in driver.walk("/")] == ["/a", "/a/b"]
        with contextlib.suppress(PathNotFound):
            assert (await driver.stat("/")).is_dir

    # -- whole contents ---------------------------------------------------------------------

    @pytest.mark.parametrize("contents", _CONTENTS.values(), ids=_CONTENTS.keys())
    async def test_write_read(self, driver: StorageDriver, contents: bytes) -> None:
        path = random_path()
        await driver.put_content(path, contents)
        assert await driver.get_content(path) == contents

    async def test_truncate(self, driver: StorageDriver) -> None:
        path = random_path()
        await driver.put_content(path, random_bytes(MiB))
        smaller = random_bytes(1024)
        await driver.put_content(path, smaller)
        assert await driver.get_content(path) == smaller

    async def test_put_content_multiple_times(self, driver: StorageDriver) -> None:
        path = random_path()
        for size in (4096, 2048, 0, 10):
            contents = random_bytes(size)
            await driver.put_content(path, contents)
            assert await driver.get_content(path) == contents
            assert (await driver.stat(path)).size == size

    async def test_read_nonexistent(self, driver: StorageDriver) -> None:
        path = random_path()
        with pytest.raises(PathNotFound) as exc:
            await driver.get_content(path)
        assert_error(exc, driver, path)

    async def test_a_directory_is_not_a_file(self, driver: StorageDriver) -> None:
        await driver.put_content("/dir/file", b"x")
        with pytest.raises(PathNotFound):
            await driver.get_content("/dir")
        with pytest.raises(PathNotFound):
            await driver.reader("/dir")

    async def test_put_content_replaces_atomically(self, driver: StorageDriver) -> None:
        path = random_path()
        old, new = b"o" * (256 * 1024), random_bytes(512 * 1024)
        await driver.put_content(path, old)
        seen: set[bytes] = set()

        async def write() -> None:
            for i in range(20):
                await driver.put_content(path, new if i % 2 == 0 else old)

        async def read() -> None:
            for _ in range(40):
                seen.add(await driver.get_content(path))

        await asyncio.gather(write(), read(), read())
        assert seen <= {old, new}

    # -- streams ----------------------------------------------------------------------------

    @pytest.mark.parametrize("contents", _CONTENTS.values(), ids=_CONTENTS.keys())
    async def test_write_read_streams(self, driver: StorageDriver, contents: bytes) -> None:
        path = random_path()
        writer = await driver.writer(path)
        for start in range(0, len(contents), 32 * 1024):
            await writer.write(contents[start : start + 32 * 1024])
        assert writer.size == len(contents)
        await writer.commit()
        await writer.close()
        assert await read_all(driver, path) == contents

    async def test_write_accepts_buffers(self, driver: StorageDriver) -> None:
        path = random_path()
        parts = [random_bytes(size) for size in (1, 1000, 3 * MiB, 8)]
        writer = await driver.writer(path)
        reused = bytearray(parts[0])
        await writer.write(reused)
        reused[:] = b"!"  # the writer must not keep a reference to a caller's buffer
        await writer.write(memoryview(parts[1]))
        await writer.write(bytearray(parts[2]))
        await writer.write(memoryview(parts[3]).cast("I"))  # 2 items, 8 bytes
        await writer.write(b"")
        await writer.commit()
        assert await driver.get_content(path) == b"".join(parts)

    async def test_write_read_large_stream(self, driver: StorageDriver) -> None:
        path = random_path()
        written, chunk = hashlib.sha256(), MiB
        writer = await driver.writer(path)
        for start in range(0, self.large_size, chunk):
            data = random_bytes(min(chunk, self.large_size - start))
            written.update(data)
            await writer.write(data)
        assert writer.size == self.large_size
        await writer.commit()
        read = hashlib.sha256()
        reader = await driver.reader(path)
        async for part in reader.chunks(chunk + 13):  # chunks that straddle the writes
            read.update(part)
        await reader.close()
        assert read.digest() == written.digest()
        assert (await driver.stat(path)).size == self.large_size

    async def test_reader_with_offset(self, driver: StorageDriver) -> None:
        path, size = random_path(), 32
        one, two, three = random_bytes(size), random_bytes(size), random_bytes(size)
        await driver.put_content(path, one + two + three)
        assert await read_all(driver, path, 0) == one + two + three
        assert await read_all(driver, path, size) == two + three
        assert await read_all(driver, path, size * 2) == three
        for offset in (-1, size * 3 + 1, 10 * MiB):
            with pytest.raises(InvalidOffset) as exc:
                await driver.reader(path, offset)
            assert_error(exc, driver, path)
            assert exc.value.offset == offset
        reader = await driver.reader(path, size * 3)  # at the end: empty, not an error
        assert await reader.read(size) == b""
        await reader.close()
        reader = await driver.reader(path, size * 3 - 1)
        assert await reader.read(size) == three[-1:]
        assert await reader.read(size) == b""
        await reader.close()

    async def test_reader_chunks_with_length(self, driver: StorageDriver) -> None:
        path, contents = random_path(), random_bytes(1000)
        await driver.put_content(path, contents)
        reader = await driver.reader(path, 100)
        parts = [part async for part in reader.chunks(64, length=500)]
        await reader.close()
        assert all(len(part) <= 64 for part in parts)
        assert b"".join(parts) == contents[100:600]

    async def test_read_nonexistent_stream(self, driver: StorageDriver) -> None:
        path = random_path()
        for offset in (0, 64):
            with pytest.raises(PathNotFound) as exc:
                await driver.reader(path, offset)
            assert_error(exc, driver, path)

    @pytest.mark.parametrize("chunk", [32, 10 * MiB], ids=["small", "large"])
    async def test_continue_stream_append(self, driver: StorageDriver, chunk: int) -> None:
        path = random_path()
        full = random_bytes(3 * chunk)
        writer = await driver.writer(path)
        await writer.write(full[:chunk])
        await writer.close()
        assert writer.size == chunk
        for part in (1, 2):
            writer = await driver.writer(path, append=True)
            assert writer.size == part * chunk
            await writer.write(full[part * chunk : (part + 1) * chunk])
            if part == 1:
                await writer.close()
                assert writer.size == 2 * chunk
        await writer.commit()
        await writer.close()
        assert await driver.get_content(path) == full

    @pytest.mark.parametrize("chunk", [32, 6 * MiB], ids=["small", "large"])
    async def test_resume_writer_from_a_closed_writers_state(
        self, driver: StorageDriver, chunk: int
    ) -> None:
        """Each writer continues from the state the one before it closed with, as if it had
        been opened with ``append=True``: across parts, pending tails and an empty write."""
        path = random_path()
        pieces = [random_bytes(chunk), b"", random_bytes(chunk + 7), random_bytes(chunk // 2)]
        writer = await driver.writer(path)
        await writer.write(pieces[0])
        await writer.close()
        written = len(pieces[0])
        for piece in pieces[1:]:
            writer = await driver.resume_writer(path, writer.resume_state())
            assert writer.size == written
            await writer.write(piece)
            written += len(piece)
            await writer.close()
        writer = await driver.resume_writer(path, writer.resume_state())
        assert writer.size == written
        await writer.commit()
        assert await driver.get_content(path) == b"".join(pieces)

    async def test_resume_writer_without_a_state_appends(self, driver: StorageDriver) -> None:
        """None, or a state from elsewhere, opens the file as ``append=True`` does."""
        path = random_path()
        writer = await driver.writer(path)
        await writer.write(b"first")
        await writer.close()
        for state in (None, object()):
            writer = await driver.resume_writer(path, state)
            assert writer.size == 5
            await writer.close()
        missing = random_path()
        with pytest.raises(PathNotFound) as exc:
            await driver.resume_writer(missing, None)
        assert_error(exc, driver, missing)

    async def test_append_to_nothing(self, driver: StorageDriver) -> None:
        path = random_path()
        with pytest.raises(PathNotFound) as exc:
            await driver.writer(path, append=True)
        assert_error(exc, driver, path)

    async def test_commit_after_partial_writes(self, driver: StorageDriver) -> None:
        path = random_path()
        parts = [random_bytes(random.randint(1, 300)) for _ in range(500)] + [random_bytes(MiB)]
        writer = await driver.writer(path)
        for i, part in enumerate(parts):
            await writer.write(part)
            assert writer.size == sum(len(p) for p in parts[: i + 1])
        await writer.commit()
        assert await driver.get_content(path) == b"".join(parts)

    async def test_writer_replaces_committed_file(self, driver: StorageDriver) -> None:
        path = random_path()
        await driver.put_content(path, random_bytes(100))
        writer = await driver.writer(path)
        assert writer.size == 0
        await writer.write(b"new")
        await writer.commit()
        assert await driver.get_content(path) == b"new"

    @pytest.mark.parametrize(
        "sizes", [(10, 0, 20), (5 * MiB + 3, 0, 5 * MiB + 7, 11)], ids=["small", "parts"]
    )
    async def test_concatenate(self, driver: StorageDriver, sizes: tuple[int, ...]) -> None:
        # Sources of S3's smallest part or more (but the last) are joined by part copies.
        sources = [random_path() for _ in sizes]
        contents = [random_bytes(size) for size in sizes]
        for source, content in zip(sources, contents, strict=True):
            await driver.put_content(source, content)
        destination = random_path()
        await driver.put_content(destination, b"replaced")
        await driver.concatenate(sources, destination)
        assert await driver.get_content(destination) == b"".join(contents)
        for source, content in zip(sources, contents, strict=True):
            assert await driver.get_content(source) == content
        with pytest.raises(PathNotFound):
            await driver.concatenate([*sources, random_path()], random_path())

    async def test_cancel(self, driver: StorageDriver) -> None:
        path = random_path()
        writer = await driver.writer(path)
        await writer.write(random_bytes(100))
        await writer.close()
        writer = await driver.writer(path, append=True)
        await writer.write(random_bytes(100))
        await writer.cancel()
        await writer.close()
        with pytest.raises(PathNotFound):
            await driver.get_content(path)
        with pytest.raises(PathNotFound):
            await driver.writer(path, append=True)

    async def test_writer_is_final_after_commit(self, driver: StorageDriver) -> None:
        path = random_path()
        writer = await driver.writer(path)
        await writer.write(b"abc")
        await writer.commit()
        await writer.close()
        await writer.close()
        with pytest.raises(DriverError):
            await writer.write(b"x")
        with pytest.raises(DriverError):
            await writer.commit()
        with pytest.raises(DriverError):
            await writer.cancel()
        assert await driver.get_content(path) == b"abc"

    # -- writing in place (drivers that claim it) ---------------------------------------------

    async def test_in_place_writer_is_invisible_until_commit(self, driver: StorageDriver) -> None:
        if not driver.write_in_place:
            pytest.skip("the driver does not claim write_in_place")
        path, contents = random_path(), random_bytes(self.in_place_size)
        writer = await driver.writer(path)
        await writer.write(contents)
        await _assert_nothing_at(driver, path)
        await writer.commit()
        assert await driver.get_content(path) == contents
        cancelled = await driver.writer(path)
        await cancelled.write(random_bytes(self.in_place_size))
        await cancelled.cancel()
        assert await driver.get_content(path) == contents

    async def test_in_place_cancel_leaves_nothing(self, driver: StorageDriver) -> None:
        if not driver.write_in_place:
            pytest.skip("the driver does not claim write_in_place")
        path = random_path()
        writer = await driver.writer(path)
        await writer.write(random_bytes(self.in_place_size))
        await writer.cancel()
        await _assert_nothing_at(driver, path)
        with pytest.raises(PathNotFound):
            await driver.writer(path, append=True)

    async def test_in_place_writers_of_one_path_are_independent(
        self, driver: StorageDriver
    ) -> None:
        if not driver.write_in_place:
            pytest.skip("the driver does not claim write_in_place")
        path, size = random_path(), self.in_place_size
        contents = [random_bytes(size) for _ in range(3)]
        writers = [await driver.writer(path) for _ in contents]
        for writer, data in zip(writers, contents, strict=True):
            await writer.write(data[: size // 2])
        for writer, data in zip(writers, contents, strict=True):
            await writer.write(data[size // 2 :])
        await _assert_nothing_at(driver, path)
        await writers[1].cancel()
        await writers[0].commit()
        assert await driver.get_content(path) == contents[0]
        await writers[2].commit()
        assert await driver.get_content(path) == contents[2]

    async def test_concurrent_stream_reads(self, driver: StorageDriver) -> None:
        path, contents = random_path(), random_bytes(min(self.large_size, 8 * MiB))
        await driver.put_content(path, contents)
        offsets = [random.randrange(len(contents)) for _ in range(10)]
        results = await asyncio.gather(*(read_all(driver, path, o, 256 * 1024) for o in offsets))
        for offset, result in zip(offsets, results, strict=True):
            assert result == contents[offset:]

    async def test_concurrent_file_streams(self, driver: StorageDriver) -> None:
        async def stream() -> None:
            path, contents = random_path(), random_bytes(2 * MiB)
            writer = await driver.writer(path)
            for start in range(0, len(contents), 64 * 1024):
                await writer.write(contents[start : start + 64 * 1024])
            await writer.commit()
            assert await read_all(driver, path) == contents

        await asyncio.gather(*(stream() for _ in range(self.concurrent_streams)))


async def _assert_nothing_at(driver: StorageDriver, path: str) -> None:
    with pytest.raises(PathNotFound):
        await driver.stat(path)
    with pytest.raises(PathNotFound):
        await driver.reader(path)
    with contextlib.suppress(PathNotFound):
        assert path not in await driver.list(path.rpartition("/")[0] or "/")


async def _drain(driver: StorageDriver, path: str) -> None:
    async for _ in driver.walk(path):
        pass
