"""Looking up the tags of a manifest reads at most ``storage.tag.concurrencylimit`` at once."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from wharf.coherence.caches import RegistryCache
from wharf.coherence.generations import Generations
from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry.namespace import Registry
from wharf.registry.tags import LOOKUP_CONCURRENCY
from wharf.storage.driver.inmemory import InMemoryDriver

pytestmark = pytest.mark.asyncio

ONE = Digest("sha256", "1" * 64)
TWO = Digest("sha256", "2" * 64)


class CountingReads(InMemoryDriver):
    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most_running = 0

    async def get_content(self, path: str) -> bytes:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.001)
            return await super().get_content(path)
        finally:
            self.running -= 1


@pytest.mark.parametrize(("configured", "expected"), [(0, LOOKUP_CONCURRENCY), (3, 3)])
async def test_lookup_reads_at_most_the_limit_at_once(configured: int, expected: int) -> None:
    driver = CountingReads()
    with ThreadPoolExecutor(1) as hashing:
        registry = Registry(
            driver, RegistryCache(Generations()), hashing, tag_lookup_concurrency=configured
        )
        tags = registry.repository(RepositoryName("app")).tags
        assert tags.lookup_concurrency == expected
        for index in range(10):
            await tags.tag(Tag(f"v{index}"), ONE if index % 2 else TWO, announce=False)
        driver.most_running = 0
        assert sorted(await tags.lookup(ONE)) == ["v1", "v3", "v5", "v7", "v9"]
        assert driver.most_running == min(expected, 10)
