from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wharf.coherence.caches import RegistryCache
from wharf.coherence.generations import Generations
from wharf.config import StorageConfig
from wharf.reference import Digest, RepositoryName
from wharf.registry.catalog import Catalog
from wharf.registry.purge import purge_uploads
from wharf.registry.upload_session import format_started_at
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver
from wharf.storage.driver.factory import create_driver
from wharf.storage.driver.inmemory import InMemoryDriver

pytestmark = pytest.mark.asyncio

OLD = "11111111-1111-4111-8111-111111111111"
NEW = "22222222-2222-4222-8222-222222222222"
NO_START = "33333333-3333-4333-8333-333333333333"
ZERO = Digest("sha256", "0" * 64)


async def _session(
    driver: StorageDriver, name: RepositoryName, upload_id: str, started: datetime | None
) -> None:
    if started is not None:
        await driver.put_content(
            paths.upload_started_at(name, upload_id), format_started_at(started)
        )
    writer = await driver.writer(paths.upload_data(name, upload_id))
    await writer.write(b"partial")
    await writer.commit()


@pytest.fixture
async def driver() -> StorageDriver:
    return create_driver(StorageConfig("inmemory", {}))


async def test_purges_only_old_sessions(driver: StorageDriver) -> None:
    name = RepositoryName("purge/me")
    await driver.put_content(paths.layer_link(name, ZERO), paths.link_content(ZERO))
    now = datetime.now(UTC)
    await _session(driver, name, OLD, now - timedelta(days=8))
    await _session(driver, name, NEW, now - timedelta(hours=1))
    catalog = Catalog(driver, RegistryCache(Generations()))

    dry = await purge_uploads(driver, catalog, timedelta(days=7), dry_run=True)
    assert dry.purged == [f"purge/me/{OLD}"]
    assert (await driver.stat(paths.upload_dir(name, OLD))).is_dir

    result = await purge_uploads(driver, catalog, timedelta(days=7))
    assert result.purged == [f"purge/me/{OLD}"]
    assert result.kept == 1
    with pytest.raises(PathNotFound):
        await driver.stat(paths.upload_dir(name, OLD))
    assert await driver.get_content(paths.upload_started_at(name, NEW))


async def test_session_without_start_time_uses_directory_time(driver: StorageDriver) -> None:
    name = RepositoryName("nostart")
    await driver.put_content(paths.layer_link(name, ZERO), paths.link_content(ZERO))
    await _session(driver, name, NO_START, None)
    catalog = Catalog(driver, RegistryCache(Generations()))
    assert (await purge_uploads(driver, catalog, timedelta(days=7))).purged == []
    assert (await purge_uploads(driver, catalog, timedelta(seconds=-60))).purged == [
        f"nostart/{NO_START}"
    ]


class _Uncommitted(InMemoryDriver):
    """Reports uncommitted data kept outside the files, as the S3 driver does."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[datetime, bool]] = []

    async def purge_uncommitted(self, before: datetime, *, dry_run: bool = False) -> list[str]:
        self.asked.append((before, dry_run))
        return ["/docker/registry/v2/repositories/x/_uploads/y/data"]


async def test_driver_uncommitted_data_is_purged_by_age() -> None:
    driver = _Uncommitted()
    catalog = Catalog(driver, RegistryCache(Generations()))
    result = await purge_uploads(driver, catalog, timedelta(days=7), dry_run=True)
    assert result.purged == ["/docker/registry/v2/repositories/x/_uploads/y/data"]
    ((before, dry_run),) = driver.asked
    assert dry_run
    assert abs((datetime.now(UTC) - timedelta(days=7) - before).total_seconds()) < 60
