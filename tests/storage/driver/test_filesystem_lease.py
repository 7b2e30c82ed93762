"""Filesystem leases across processes: a lock held by another process is busy, and a holder
killed with SIGKILL leaves nothing locked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from wharf.config.model import StorageConfig
from wharf.storage.driver import LeaseBusy, PathNotFound, StorageDriver
from wharf.storage.driver.factory import create_driver

SRC = Path(__file__).resolve().parents[3] / "src"
_PATH = "/docker/registry/v2/repositories/a/_uploads/u/startedat"

_HOLDER = textwrap.dedent(
    """
    import asyncio, sys, time
    from wharf.config.model import StorageConfig
    from wharf.storage.driver.factory import create_driver

    async def main() -> None:
        driver = create_driver(StorageConfig("filesystem", {"rootdirectory": sys.argv[1]}))
        lease = await driver.lease(sys.argv[2])
        print("held", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[StorageDriver]:
    driver = create_driver(StorageConfig("filesystem", {"rootdirectory": str(tmp_path)}))
    await driver.put_content(_PATH, b"2026-01-01T00:00:00Z")
    yield driver
    await driver.close()


@pytest.fixture
def holder(tmp_path: Path, driver: StorageDriver) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path), _PATH],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()
    process.stdout.close()


async def test_another_process_holding_it_is_busy(
    driver: StorageDriver, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LeaseBusy):
        await driver.lease(_PATH)


async def test_killed_holder_releases_at_once(
    driver: StorageDriver, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    async with await driver.lease(_PATH):
        pass


async def test_two_leases_in_one_process_exclude_each_other(driver: StorageDriver) -> None:
    # Record locks of one process would not: these belong to the descriptor.
    first = await driver.lease(_PATH)
    with pytest.raises(LeaseBusy):
        await driver.lease(_PATH)
    await first.release()


async def test_a_replaced_file_keeps_its_lease(driver: StorageDriver, tmp_path: Path) -> None:
    """``put_content`` replaces a file by a rename: the lease, on a lock file beside it, holds
    across that, and a path with no file has no lease (nor a lock file made for it)."""
    held = await driver.lease(_PATH)
    await driver.put_content(_PATH, b"written again")
    with pytest.raises(LeaseBusy):
        await driver.lease(_PATH)
    full = tmp_path / _PATH.lstrip("/")
    full.unlink()
    with pytest.raises(PathNotFound):
        await driver.lease(_PATH)
    await held.release(deleted=True)
    with pytest.raises(PathNotFound):
        await driver.lease(_PATH + "-never")
    assert sorted(p.name for p in full.parent.iterdir()) == ["startedat#lock"]
