"""The catalog: every repository, from the catalog index once it is built
(``catalog_index``), until then found by walking ``repositories/``.

A directory is a repository when it holds ``_layers`` or ``_manifests`` (Distribution lists a
repository once it has ``_layers``); other ``_``-prefixed directories are never descended.

A walk lists every directory of the tree (``repository_walk``), so it is the expensive part
(0.1-0.2 s for 10,000 repositories on a filesystem whose directories are cached, several
times that when they must be read from the disk) and is done once per change token in each
process: requests that miss the cache while a walk is under way wait for that walk instead of
starting their own. The walk runs as a task of its own, so a request that goes away does not
stop it for the others waiting.
"""

from __future__ import annotations

import asyncio
import bisect

from wharf.coherence.caches import RegistryCache
from wharf.coherence.generations import Token
from wharf.registry.catalog_index import CatalogIndex
from wharf.registry.repository_walk import find_repositories
from wharf.storage.driver import StorageDriver

__all__ = ["CATALOG_KEY", "REMOVALS_KEY", "Catalog"]

#: The change-token key of the repository list (not a valid repository name).
CATALOG_KEY = "_catalog"
#: The change-token key that a repository's removal changes (not a valid repository name).
REMOVALS_KEY = "_catalog_removals"
_MARKERS = ("_layers", "_manifests")


class Catalog:
    def __init__(self, driver: StorageDriver, cache: RegistryCache) -> None:
        self.driver = driver
        self.cache = cache
        self.index = CatalogIndex(driver)
        #: The walk under way for each change token (several only while tokens change).
        self._walks: dict[Token, asyncio.Task[list[str]]] = {}

    async def all(self) -> list[str]:
        token = self.cache.generations.token(CATALOG_KEY)
        cached = self.cache.catalog.get(CATALOG_KEY, token)
        if cached is not None:
            return cached
        walk = self._walks.get(token)
        if walk is None:
            walk = asyncio.get_running_loop().create_task(self._walk_under(token))
            self._walks[token] = walk
            walk.add_done_callback(lambda done: self._walked(token, done))
        # A caller cancelled while waiting leaves the walk running for the others.
        return await asyncio.shield(walk)

    def lists(self, name: str) -> bool:
        """Whether the catalog cached under the current token holds ``name`` (no walk)."""
        cached = self.cache.catalog.get(CATALOG_KEY, self.cache.generations.token(CATALOG_KEY))
        if cached is None:
            return False
        index = bisect.bisect_left(cached, name)
        return index < len(cached) and cached[index] == name

    async def _walk_under(self, token: Token) -> list[str]:
        names = await self.walk()
        self.cache.catalog.put(CATALOG_KEY, token, names)
        return names

    def _walked(self, token: Token, walk: asyncio.Task[list[str]]) -> None:
        if self._walks.get(token) is walk:
            del self._walks[token]
        if not walk.cancelled():
            walk.exception()  # retrieved even when every waiter went away; the next call retries

    async def page(self, limit: int, last: str | None) -> tuple[list[str], bool]:
        """Up to ``limit`` names after ``last``, and whether more follow: from the index
        when it is built, else from the walk cached under the current token."""
        indexed = await self.index.page(limit, last)
        if indexed is not None:
            return indexed
        names = await self.all()
        start = 0
        if last:
            start = bisect.bisect_right(names, last)
        chunk = names[start : start + limit]
        return chunk, start + limit < len(names)

    async def walk(self) -> list[str]:
        """Every repository, read from storage now (no cache)."""
        return await find_repositories(self.driver, _MARKERS)
