"""Remove a whole repository: Distribution's ``RepositoryRemover`` (its ``vacuum``).

Everything of the repository goes: its manifests' revision links, its tags, its layer links,
its referrers index, its upload sessions and whatever else wharf keeps under ``_``-prefixed
directories of it. The blobs stay in the shared store, where other repositories may link them;
garbage collection removes those nothing references any more. A repository nested below it
(``team/app/cache`` below ``team/app``) is another repository and is left alone.

Upload sessions go first, each ``startedat`` before its directory, as ``Uploads`` removes them:
from then on nobody can take a session's lease, so no request writes into a session being
deleted.
"""

from __future__ import annotations

import contextlib

from wharf.errors import NameUnknown
from wharf.reference import RepositoryName
from wharf.registry.catalog import CATALOG_KEY, REMOVALS_KEY
from wharf.registry.namespace import Registry
from wharf.storage import paths
from wharf.storage.driver import PathNotFound

__all__ = ["RepositoryRemover"]


class RepositoryRemover:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def remove(self, name: RepositoryName) -> None:
        """Remove repository ``name``; NameUnknown when there is none."""
        driver = self.registry.driver
        directory = paths.repository_dir(name)
        try:
            children = await driver.list(directory)
        except PathNotFound:
            raise NameUnknown({"name": name.value}) from None
        owned = [child for child in children if child.rpartition("/")[2].startswith("_")]
        if not owned:
            raise NameUnknown({"name": name.value})
        try:
            with contextlib.suppress(PathNotFound):
                for session in await driver.list(paths.uploads_dir(name)):
                    upload_id = session.rpartition("/")[2]
                    with contextlib.suppress(PathNotFound):
                        await driver.delete(paths.upload_started_at(name, upload_id))
            for child in owned:
                with contextlib.suppress(PathNotFound):
                    await driver.delete(child)
            await self.registry.catalog.index.remove([name.value])
        finally:
            self.registry.indexed_repositories.pop(name.value, None)
            generations = self.registry.cache.generations
            generations.changed(name.value)
            generations.changed(CATALOG_KEY)
            generations.changed(REMOVALS_KEY)
            self.registry.known_repositories.discard(name.value)
