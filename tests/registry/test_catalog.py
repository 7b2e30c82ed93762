"""The catalog walk: one per change token in a process, shared by the requests that miss."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from wharf.coherence.caches import RegistryCache
from wharf.coherence.generations import Generations
from wharf.reference import Digest, RepositoryName
from wharf.registry.catalog import CATALOG_KEY, Catalog
from wharf.registry.namespace import Registry
from wharf.registry.repository_walk import BATCH, BATCHES_AT_ONCE
from wharf.storage import paths
from wharf.storage.driver import DriverError
from wharf.storage.driver.base import _LIST_MANY_AT_ONCE
from wharf.storage.driver.inmemory import InMemoryDriver

pytestmark = pytest.mark.asyncio

ZERO = Digest("sha256", "0" * 64)
#: More repositories than one batch lists.
REPOSITORIES = 3 * BATCH // 2


class SlowListing(InMemoryDriver):
    """Lists after a pause, counting calls and how many run at once; fails when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self.fail = False

    async def list(self, path: str) -> list[str]:
        self.calls += 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.001)
            if self.fail:
                raise DriverError("storage away")
            return await super().list(path)
        finally:
            self.running -= 1


async def _repository(driver: InMemoryDriver, name: str) -> None:
    link = paths.manifest_revision_link(RepositoryName(name), ZERO)
    await driver.put_content(link, paths.link_content(ZERO))


@pytest.fixture
async def driver() -> SlowListing:
    driver = SlowListing()
    for index in range(REPOSITORIES):
        await _repository(driver, f"team{index % 3}/app{index:03d}")
    await _repository(driver, "team0/app000/nested")
    return driver


@pytest.fixture
def catalog(driver: SlowListing) -> Catalog:
    return Catalog(driver, RegistryCache(Generations()))


async def test_walk_finds_every_repository_with_bounded_listing(
    driver: SlowListing, catalog: Catalog
) -> None:
    names = await catalog.walk()
    assert len(names) == REPOSITORIES + 1
    assert names == sorted(names)
    assert "team0/app000/nested" in names
    assert driver.most_running <= BATCHES_AT_ONCE * _LIST_MANY_AT_ONCE
    assert driver.most_running > 1  # and in parallel


async def test_concurrent_misses_share_one_walk(driver: SlowListing, catalog: Catalog) -> None:
    await catalog.walk()
    one_walk = driver.calls
    results = await asyncio.gather(*(catalog.all() for _ in range(8)))
    assert all(result == results[0] for result in results)
    assert len(results[0]) == REPOSITORIES + 1
    assert driver.calls == 2 * one_walk
    await catalog.all()
    assert driver.calls == 2 * one_walk  # the cache answered


async def test_a_cancelled_caller_leaves_the_walk_to_the_others(
    driver: SlowListing, catalog: Catalog
) -> None:
    first = asyncio.create_task(catalog.all())
    second = asyncio.create_task(catalog.all())
    await asyncio.sleep(0.005)
    first.cancel()
    names = await second
    assert first.cancelled()
    assert len(names) == REPOSITORIES + 1


async def test_a_walk_whose_only_caller_went_away_goes_on(
    driver: SlowListing, catalog: Catalog
) -> None:
    await catalog.walk()
    one_walk = driver.calls
    lone = asyncio.create_task(catalog.all())
    # Batches finish and start again, so a fixed pause can fall between two: wait for a listing.
    async with asyncio.timeout(5):
        while driver.running == 0:  # noqa: ASYNC110 - the listing count is the condition
            await asyncio.sleep(0)
    assert driver.running > 0
    lone.cancel()
    # Joins the walk still under way (or reads what it cached): the tree is listed once.
    assert len(await catalog.all()) == REPOSITORIES + 1
    assert lone.cancelled()
    assert driver.calls == 2 * one_walk


async def test_a_new_token_walks_again(driver: SlowListing, catalog: Catalog) -> None:
    before = await catalog.all()
    await _repository(driver, "late/comer")
    assert await catalog.all() == before  # same token: the cached list
    catalog.cache.generations.changed(CATALOG_KEY)
    assert await catalog.all() == sorted([*before, "late/comer"])


async def test_a_failed_walk_fails_its_waiters_and_is_retried(
    driver: SlowListing, catalog: Catalog
) -> None:
    driver.fail = True
    results = await asyncio.gather(catalog.all(), catalog.all(), return_exceptions=True)
    assert all(isinstance(result, DriverError) for result in results)
    assert driver.running == 0
    driver.fail = False
    assert len(await catalog.all()) == REPOSITORIES + 1


async def test_a_write_changes_the_catalog_token_only_for_a_repository_it_may_not_list(
    driver: SlowListing,
) -> None:
    with ThreadPoolExecutor(1) as hashing:
        registry = Registry(driver, RegistryCache(Generations()), hashing)
        generations = registry.cache.generations
        listed = await registry.catalog.all()
        token = generations.token(CATALOG_KEY)

        registry.repository(RepositoryName(listed[0])).changed()
        assert generations.token(CATALOG_KEY) == token  # the cached catalog lists it

        registry.repository(RepositoryName("brand/new")).changed()
        assert generations.token(CATALOG_KEY) != token
        token = generations.token(CATALOG_KEY)
        registry.repository(RepositoryName("brand/new")).changed()
        assert generations.token(CATALOG_KEY) == token  # this process knows it now

        # With no catalog cached under the current token, any repository may be new.
        registry.repository(RepositoryName(listed[1])).changed()
        assert generations.token(CATALOG_KEY) != token
