"""The in-memory driver: the contract, and what only it promises."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.storage.driver.contract import DriverContract
from wharf.config.model import StorageConfig
from wharf.storage.driver import PathNotFound, StorageDriver
from wharf.storage.driver.factory import create_driver


@pytest.fixture
async def driver() -> AsyncIterator[StorageDriver]:
    driver = create_driver(StorageConfig("inmemory", {}))
    yield driver
    await driver.close()


class TestInMemoryContract(DriverContract):
    pass


async def test_uncommitted_bytes_are_invisible(driver: StorageDriver) -> None:
    writer = await driver.writer("/up/data")
    await writer.write(b"abc")
    await writer.close()
    with pytest.raises(PathNotFound):
        await driver.get_content("/up/data")
    assert await driver.list("/") == []
    writer = await driver.writer("/up/data", append=True)
    assert writer.size == 3
    await writer.write(b"def")
    await writer.commit()
    assert await driver.get_content("/up/data") == b"abcdef"


async def test_delete_discards_uncommitted_bytes(driver: StorageDriver) -> None:
    writer = await driver.writer("/up/id/data")
    await writer.write(b"abc")
    await writer.close()
    await driver.delete("/up")
    with pytest.raises(PathNotFound):
        await driver.writer("/up/id/data", append=True)
    with pytest.raises(PathNotFound):
        await driver.delete("/up")


async def test_directories_vanish_with_their_last_file(driver: StorageDriver) -> None:
    await driver.put_content("/a/b/c/d", b"x")
    await driver.move("/a/b/c/d", "/a/e")
    assert await driver.list("/a") == ["/a/e"]
    await driver.delete("/a/e")
    assert await driver.list("/") == []
    with pytest.raises(PathNotFound):
        await driver.stat("/a")
