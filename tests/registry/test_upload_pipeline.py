"""The upload pipeline: every byte hashed and written once, in order, whatever the chunking."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wharf.hashing import new_hasher
from wharf.registry import upload_pipeline
from wharf.registry.upload_pipeline import BATCH_SIZE, PIPELINE_DEPTH, pump
from wharf.storage.driver import FileWriter, StorageDriver
from wharf.storage.driver.filesystem import FilesystemDriver
from wharf.storage.driver.inmemory import InMemoryDriver


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture(params=["inmemory", "filesystem"])
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    driver: StorageDriver = (
        InMemoryDriver() if request.param == "inmemory" else FilesystemDriver(str(tmp_path))
    )
    yield driver
    await driver.close()


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, 1),
        (10, 3),
        (BATCH_SIZE, BATCH_SIZE),
        (3 * BATCH_SIZE + 7, 333_333),  # chunks straddle batch boundaries
        ((PIPELINE_DEPTH + 3) * BATCH_SIZE, 32 << 10),  # more batches than buffers
        (2 * BATCH_SIZE + 1, 5 * BATCH_SIZE),  # one chunk larger than several batches
    ],
)
async def test_every_byte_is_hashed_and_written_in_order(
    driver: StorageDriver, size: int, chunk: int
) -> None:
    data = os.urandom(size)
    writer = await driver.writer("/upload/data")
    hasher = new_hasher("sha256")
    with ThreadPoolExecutor(2) as executor:
        received = await pump(_chunks(data, chunk), writer, hasher, executor)
    await writer.commit()
    assert received == size
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert await driver.get_content("/upload/data") == data


async def test_buffers_are_reused_by_the_next_upload(driver: StorageDriver) -> None:
    data = os.urandom(3 * BATCH_SIZE)
    pooled: list[set[int]] = []
    with ThreadPoolExecutor(2) as executor:
        for name in ("a", "b"):
            writer = await driver.writer(f"/{name}")
            await pump(_chunks(data, 1 << 16), writer, new_hasher("sha256"), executor)
            await writer.commit()
            pooled.append({id(buffer) for buffer in upload_pipeline._pool})
    assert pooled[0]
    assert pooled[0] == pooled[1]
    assert await driver.get_content("/a") == await driver.get_content("/b") == data


class _FailingWriter(FileWriter):
    def __init__(self, fail_after: int) -> None:
        self.fail_after = fail_after
        self.written = 0

    @property
    def size(self) -> int:
        return self.written

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.written >= self.fail_after:
            raise OSError("disk full")
        self.written += memoryview(data).nbytes

    async def close(self) -> None:
        pass

    async def cancel(self) -> None:
        pass

    async def commit(self) -> None:
        pass


async def test_a_failing_writer_stops_the_upload_with_its_own_error() -> None:
    upload_pipeline._pool.clear()
    data = os.urandom(6 * BATCH_SIZE)
    with ThreadPoolExecutor(2) as executor, pytest.raises(OSError, match="disk full"):
        await pump(_chunks(data, 1 << 16), _FailingWriter(2 * BATCH_SIZE), None, executor)
    # A thread may still have been reading a buffer of the failed upload: none is reused.
    assert upload_pipeline._pool == []
