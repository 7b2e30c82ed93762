"""The contract for leases (see ``contract``): exclusive, counted where the driver counts,
never of a file that is gone, invisible to listings."""

from __future__ import annotations

import asyncio

import pytest

from tests.storage.driver.contract_support import (
    ContractSettings,
    assert_error,
    random_bytes,
    random_path,
)
from wharf.storage.driver import LeaseBusy, PathNotFound, StorageDriver

__all__ = ["LeaseContract"]


class LeaseContract(ContractSettings):
    async def test_lease_of_missing_file(self, driver: StorageDriver) -> None:
        path = random_path()
        with pytest.raises(PathNotFound) as exc:
            await driver.lease(path)
        assert_error(exc, driver, path)

    async def test_lease_is_exclusive_until_released(self, driver: StorageDriver) -> None:
        path = random_path()
        await driver.put_content(path, b"session")
        first = await driver.lease(path)
        with pytest.raises(LeaseBusy) as exc:
            await driver.lease(path)
        assert_error(exc, driver, path)
        first.check()
        await first.release()
        await first.release()  # twice does nothing
        async with await driver.lease(path) as second:
            if first.turn is not None:
                assert second.turn == first.turn + 1
            with pytest.raises(LeaseBusy):  # a hint of the turn before the holder's
                await driver.lease(path, after=first.turn)

    async def test_concurrent_takers_one_wins(self, driver: StorageDriver) -> None:
        path = random_path()
        await driver.put_content(path, b"session")
        results = await asyncio.gather(
            *(driver.lease(path) for _ in range(8)), return_exceptions=True
        )
        held = [r for r in results if not isinstance(r, BaseException)]
        assert len(held) == 1
        assert all(isinstance(r, LeaseBusy) for r in results if isinstance(r, BaseException))
        await held[0].release()

    async def test_turns_tell_whether_another_held_it(self, driver: StorageDriver) -> None:
        path = random_path()
        await driver.put_content(path, b"session")
        mine = await driver.lease(path)
        await mine.release()
        if mine.turn is None:
            pytest.skip("the driver does not count turns")
        again = await driver.lease(path, after=mine.turn)
        assert again.turn == mine.turn + 1
        await again.release()
        other = await driver.lease(path)  # another process, which knows nothing
        await other.release()
        assert other.turn == mine.turn + 2
        stale = await driver.lease(path, after=mine.turn)  # the hint is out of date
        assert stale.turn == mine.turn + 3
        await stale.release()

    async def test_no_lease_once_deleted(self, driver: StorageDriver) -> None:
        directory = random_path()
        path = f"{directory}/startedat"
        await driver.put_content(path, b"session")
        await driver.put_content(f"{directory}/data", b"bytes")
        lease = await driver.lease(path)
        await driver.delete(path)
        await driver.delete(directory)
        await lease.release(deleted=True)
        for after in (None, lease.turn):
            with pytest.raises(PathNotFound):
                await driver.lease(path, after=after)
        with pytest.raises(PathNotFound):
            await driver.stat(directory)

    async def test_leases_are_invisible(self, driver: StorageDriver) -> None:
        directory = random_path()
        path = f"{directory}/startedat"
        await driver.put_content(path, b"session")
        async with await driver.lease(path):
            assert await driver.list(directory) == [path]
            assert [info.path async for info in driver.walk(directory)] == [path]
            assert await driver.get_content(path) == b"session"
        assert await driver.list(directory) == [path]
        assert (await driver.stat(path)).size == len(b"session")

    async def test_lease_leaves_the_file_writable(self, driver: StorageDriver) -> None:
        path = random_path()
        contents = random_bytes(1024)
        await driver.put_content(path, b"")
        async with await driver.lease(path):
            writer = await driver.writer(path, append=True)
            await writer.write(contents)
            await writer.commit()
        assert await driver.get_content(path) == contents
