"""S3 leases: a holder that stops renewing loses its turn to the next taker, by the storage's
clock, and knows it before the taker can take it; a holder that renews keeps it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.s3servers import S3Server
from wharf.config.model import StorageConfig
from wharf.storage.driver import LeaseBusy, LeaseLost, StorageDriver
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
async def driver(s3_server: S3Server, short_leases: None) -> AsyncIterator[StorageDriver]:
    parameters = s3_server.parameters(s3_server.create_bucket())
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
