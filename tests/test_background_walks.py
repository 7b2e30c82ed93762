"""Background walks (the upload purge, which also reconciles the catalog index) run in one
process of all those sharing the storage, after a random delay, and stop with the process:
SIGTERM during a purge walk on S3 ends the server within seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.s3servers import S3Server
from tests.support.server import WharfServer
from wharf.coherence.caches import RegistryCache
from wharf.coherence.generations import Generations
from wharf.config import StorageConfig
from wharf.config.model import UploadPurgingConfig
from wharf.reference import Digest, RepositoryName
from wharf.registry.catalog import Catalog
from wharf.registry.purge import purge_if_due
from wharf.storage import paths
from wharf.storage.driver import LeaseBusy, StorageDriver
from wharf.storage.driver.factory import create_driver

ZERO = Digest("sha256", "0" * 64)
WALKING = "upload purge: walking the repositories"


async def _repositories(driver: StorageDriver, count: int) -> None:
    slots = asyncio.Semaphore(32)

    async def one(index: int) -> None:
        async with slots:
            name = RepositoryName(f"team{index % 10}/app{index:04d}")
            await driver.put_content(paths.layer_link(name, ZERO), paths.link_content(ZERO))

    await asyncio.gather(*(one(index) for index in range(count)))


@pytest.mark.asyncio
async def test_one_purge_per_interval_across_processes(tmp_path: Path) -> None:
    # Two drivers on one directory: two processes' worth of file locks.
    storage = StorageConfig("filesystem", {"rootdirectory": str(tmp_path)})
    drivers = [create_driver(storage), create_driver(storage)]
    await _repositories(drivers[0], 3)
    catalogs = [Catalog(driver, RegistryCache(Generations())) for driver in drivers]
    assert await catalogs[0].index.build()
    await catalogs[0].index.remove(["team1/app0001"])  # as if another writer made it
    config = UploadPurgingConfig(interval=timedelta(hours=1))

    async def purge(index: int) -> object:
        try:
            return await purge_if_due(drivers[index], catalogs[index], config)
        except LeaseBusy:
            return "busy"

    results = await asyncio.gather(purge(0), purge(1))
    assert sum(result not in (None, "busy") for result in results) == 1
    assert await purge(1) is None  # not due again within the interval
    assert await purge(0) is None
    # The purge's walk put back what the index missed.
    assert await catalogs[1].index.page(10, None) == (
        ["team0/app0000", "team1/app0001", "team2/app0002"],
        False,
    )
    for driver in drivers:
        await driver.close()


@pytest.mark.server
@pytest.mark.s3
@pytest.mark.slow
def test_sigterm_during_a_purge_walk_stops_within_seconds(moto_server: S3Server) -> None:
    parameters = moto_server.fresh_parameters()
    driver = create_driver(StorageConfig("s3", parameters))
    asyncio.run(_repositories(driver, 600))
    config = {
        "log": {"level": "info"},
        "storage": {"maintenance": {"uploadpurging": {"enabled": True, "interval": "1s"}}},
    }
    server = WharfServer(storage={"s3": parameters}, config=config, workers=2)
    with server:
        deadline = time.monotonic() + 30
        while WALKING not in server.log():
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.02)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGTERM)
        started = time.monotonic()
        assert server.process.wait(30) == 0
        stopped = time.monotonic() - started
        log = server.log()
    assert stopped < 5, log[-3000:]
    assert log.count(WALKING) == 1, log[-3000:]  # one walk of the two workers
