"""S3 leases: a holder that stops renewing loses its turn to the next taker, by the storage's
clock, and knows it before the taker can take it; a holder that renews keeps it. On a store
without atomic conditional writes (Swift), leases are this machine's lock files: exclusive
between processes, released by a holder's death, and not claimed exclusive across machines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.s3servers import S3Server
from wharf.config.model import StorageConfig
from wharf.storage.driver import LeaseBusy, LeaseLost, PathNotFound, StorageDriver
from wharf.storage.driver.factory import create_driver
from wharf.storage.driver.s3 import lease as s3_lease

pytestmark = pytest.mark.s3

_PATH = "/docker/registry/v2/repositories/a/_uploads/u/startedat"


@pytest.fixture
def short_leases() -> Iterator[None]:
    settings = s3_lease.SETTINGS
    saved = settings.ttl, settings.renew, settings.margin
    settings.ttl, settings.renew, settings.margin = 3.0, 1.0, 1.0
    yield
    settings.ttl, settings.renew, settings.margin = saved


@pytest.fixture
async def driver(moto_server: S3Server, short_leases: None) -> AsyncIterator[StorageDriver]:
    parameters = moto_server.parameters(moto_server.create_bucket())
    driver = create_driver(StorageConfig("s3", parameters))
    await driver.put_content(_PATH, b"2026-01-01T00:00:00Z")
    yield driver
    await driver.close()


async def test_renewed_lease_stays_held(driver: StorageDriver) -> None:
    lease = await driver.lease(_PATH)
    await asyncio.sleep(5)  # longer than the lease lives unrenewed
    lease.check()
    with pytest.raises(LeaseBusy):
        await driver.lease(_PATH)
    await lease.release()


async def test_abandoned_lease_expires(driver: StorageDriver) -> None:
    lease = await driver.lease(_PATH)
    assert isinstance(lease, s3_lease.S3Lease)
    lease._renewing.cancel()  # a holder that stalled: its renewals stop, nothing releases it
    await asyncio.sleep(1)
    with pytest.raises(LeaseBusy):
        await driver.lease(_PATH)
    with pytest.raises(LeaseLost):
        await _wait_lost(lease)
    await asyncio.sleep(1.5)  # past the TTL by the storage's clock (whole seconds)
    taken = await driver.lease(_PATH)
    assert lease.turn is not None
    assert taken.turn == lease.turn + 1
    await taken.release()
    await lease.release()  # a holder that lost its turn writes nothing to it


async def _wait_lost(lease: s3_lease.S3Lease) -> None:
    for _ in range(50):
        lease.check()
        await asyncio.sleep(0.1)


_HOLDER = textwrap.dedent(
    """
    import asyncio, json, sys
    from wharf.config.model import StorageConfig
    from wharf.storage.driver.factory import create_driver

    async def main() -> None:
        driver = create_driver(StorageConfig("s3", json.loads(sys.argv[1])))
        lease = await driver.lease(sys.argv[2])
        print("held", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)
SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
async def swift_driver(swift_server: S3Server) -> AsyncIterator[tuple[StorageDriver, Any]]:
    parameters = swift_server.parameters(swift_server.create_bucket())
    driver = create_driver(StorageConfig("s3", parameters))
    await driver.put_content(_PATH, b"2026-01-01T00:00:00Z")
    yield driver, parameters
    await driver.close()


async def test_swift_leases_are_this_machines(
    swift_driver: tuple[StorageDriver, dict[str, Any]],
) -> None:
    driver, parameters = swift_driver
    assert not driver.exclusive_leases
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        json.dumps(parameters),
        _PATH,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert process.stdout is not None
    assert (await process.stdout.readline()).strip() == b"held"
    with pytest.raises(LeaseBusy):
        await driver.lease(_PATH)
    process.send_signal(signal.SIGKILL)
    await process.wait()
    first = await driver.lease(_PATH)
    await first.release()
    second = await driver.lease(_PATH, after=first.turn)
    assert first.turn is not None
    assert second.turn == first.turn + 1
    await driver.delete(_PATH)
    await second.release(deleted=True)
    with pytest.raises(PathNotFound):
        await driver.lease(_PATH)
