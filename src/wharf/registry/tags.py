"""Tags: ``_manifests/tags/<tag>/current/link`` names the manifest a tag points to."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from wharf.coherence.caches import RegistryCache
from wharf.errors import ManifestUnknown, NameUnknown, RegistryError
from wharf.reference import Digest, RepositoryName, Tag
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver

__all__ = ["LOOKUP_CONCURRENCY", "Tags"]

#: Tags read at once when looking for those that point at a manifest, unless configured.
LOOKUP_CONCURRENCY = 64


class Tags:
    """``changed`` is called after each tag or untag is stored (``Repository.changed``)."""

    def __init__(
        self,
        driver: StorageDriver,
        name: RepositoryName,
        cache: RegistryCache,
        changed: Callable[[], None],
        lookup_concurrency: int = LOOKUP_CONCURRENCY,
    ) -> None:
        self.driver = driver
        self.name = name
        self.cache = cache
        self.changed = changed
        #: Tags read at once by :meth:`lookup` (Distribution's ``storage.tag.concurrencylimit``).
        self.lookup_concurrency = lookup_concurrency

    async def get(self, tag: Tag) -> Digest:
        token = self.cache.generations.token(self.name.value)
        key = (self.name.value, tag.value)
        cached = self.cache.tags.get(key, token)
        if cached is not None:
            return Digest.parse(cached)
        try:
            digest = paths.parse_link(
                await self.driver.get_content(paths.tag_current_link(self.name, tag))
            )
        except (PathNotFound, RegistryError):
            raise ManifestUnknown({"tag": tag.value}) from None
        self.cache.tags.put(key, token, str(digest))
        return digest

    async def tag(self, tag: Tag, digest: Digest, *, announce: bool = True) -> None:
        """Point ``tag`` at ``digest``; ``announce``: False for a caller that announces its
        own writes together with this one."""
        # The current link first: a tag is listed once its directory exists, so one listed
        # must resolve. A process killed between the two leaves a tag without its history
        # entry, which nothing reads to resolve it (``wharf check --repair`` adds it).
        await self.driver.put_content(
            paths.tag_current_link(self.name, tag), paths.link_content(digest)
        )
        await self.driver.put_content(
            paths.tag_index_link(self.name, tag, digest), paths.link_content(digest)
        )
        if announce:
            self.changed()

    async def untag(self, tag: Tag, *, announce: bool = True) -> None:
        # The history first, for the same reason as in ``tag``: a delete that stops half way
        # (on stores that delete a tree key by key) leaves a tag that still resolves.
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.tag_index_dir(self.name, tag))
        try:
            await self.driver.delete(paths.tag_dir(self.name, tag))
        except PathNotFound:
            raise ManifestUnknown({"tag": tag.value}) from None
        if announce:
            self.changed()

    async def all(self) -> list[str]:
        """Every tag, sorted; NameUnknown when the repository has none."""
        token = self.cache.generations.token(self.name.value)
        cached = self.cache.tag_lists.get(self.name.value, token)
        if cached is not None:
            return cached
        try:
            children = await self.driver.list(paths.tags_dir(self.name))
        except PathNotFound:
            # Some drivers drop a directory with its last entry: a repository whose last
            # tag was deleted still exists, with no tags.
            try:
                await self.driver.stat(paths.repository_dir(self.name))
            except PathNotFound:
                raise NameUnknown({"name": self.name.value}) from None
            children = []
        tags = sorted(child.rpartition("/")[2] for child in children)
        self.cache.tag_lists.put(self.name.value, token, tags)
        return tags

    async def lookup(self, digest: Digest) -> list[str]:
        """The tags currently pointing at ``digest``."""
        try:
            names = await self.all()
        except NameUnknown:
            return []

        async def points_here(name: str) -> bool:
            with contextlib.suppress(RegistryError):
                return await self.get(Tag(name)) == digest
            return False

        found: list[str] = []
        step = self.lookup_concurrency
        for start in range(0, len(names), step):
            batch = names[start : start + step]
            hits = await asyncio.gather(*(points_here(name) for name in batch))
            found.extend(name for name, hit in zip(batch, hits, strict=True) if hit)
        return found
