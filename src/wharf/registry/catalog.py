"""The catalog: every repository, found by walking ``repositories/``.

A directory is a repository when it holds ``_layers`` or ``_manifests`` (Distribution lists a
repository once it has ``_layers``); other ``_``-prefixed directories are never descended.
"""

from __future__ import annotations

import asyncio
import bisect

from wharf.registry.cache import RegistryCache
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver

__all__ = ["CATALOG_KEY", "Catalog"]

#: The change-token key of the repository list (not a valid repository name).
CATALOG_KEY = "_catalog"
_MARKERS = ("_layers", "_manifests")
_WALK_CONCURRENCY = 32


class Catalog:
    def __init__(self, driver: StorageDriver, cache: RegistryCache) -> None:
        self.driver = driver
        self.cache = cache

    async def all(self) -> list[str]:
        token = self.cache.generations.token(CATALOG_KEY)
        cached = self.cache.catalog.get(CATALOG_KEY, token)
        if cached is not None:
            return cached
        names = await self.walk()
        self.cache.catalog.put(CATALOG_KEY, token, names)
        return names

    async def page(self, limit: int, last: str | None) -> tuple[list[str], bool]:
        """Up to ``limit`` names after ``last``, and whether more follow."""
        names = await self.all()
        start = 0
        if last:
            start = bisect.bisect_right(names, last)
        chunk = names[start : start + limit]
        return chunk, start + limit < len(names)

    async def walk(self) -> list[str]:
        """Every repository, read from storage now (no cache)."""
        root = paths.repositories_dir()
        found: list[str] = []
        semaphore = asyncio.Semaphore(_WALK_CONCURRENCY)

        async def visit(directory: str) -> None:
            async with semaphore:
                try:
                    children = await self.driver.list(directory)
                except PathNotFound:
                    return
            names = {child.rpartition("/")[2]: child for child in children}
            if any(marker in names for marker in _MARKERS):
                found.append(directory[len(root) + 1 :])
            await asyncio.gather(
                *(visit(path) for name, path in names.items() if not name.startswith("_"))
            )

        await visit(root)
        return sorted(found)
