"""Tags: ``_manifests/tags/<tag>/current/link`` names the manifest a tag points to.

Tag lists are read from storage on every request (one listing, or one page of it where the
driver lists from a name: ``StorageDriver.list_page``), never from a cache kept by wharf's
change tokens, so a tag another writer (Distribution on the same storage) stored is listed;
where the driver tells a version of a directory's names that any writer changes (the
filesystem), an answer may be kept under it (``listing_version``).

Which tags point at a manifest is kept beside the repository, ``_digesttags/<alg>/<hex>/tags/
<tag>``, written before the tag's link and removed after it; a manifest delete reads that and
checks each entry against the tag's link, instead of reading every tag. It is complete for a
revision that wharf stored first (``complete``, written before the revision link); for a
revision another writer stored, or that was stored before the index existed, every tag is
read, as Distribution does. A tag that another writer points at a revision wharf stored first
is not in the index: a delete of that revision leaves the tag (the limit README states).
"""

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
        await self.driver.put_content(paths.digest_tag(self.name, digest, tag), b"")
        await self.driver.put_content(
            paths.tag_current_link(self.name, tag), paths.link_content(digest)
        )
        await self.driver.put_content(
            paths.tag_index_link(self.name, tag, digest), paths.link_content(digest)
        )
        if announce:
            self.changed()

    async def untag(self, tag: Tag, *, announce: bool = True) -> None:
        current = await self._read(tag)
        # The history first, for the same reason as in ``tag``: a delete that stops half way
        # (on stores that delete a tree key by key) leaves a tag that still resolves.
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.tag_index_dir(self.name, tag))
        try:
            await self.driver.delete(paths.tag_dir(self.name, tag))
        except PathNotFound:
            raise ManifestUnknown({"tag": tag.value}) from None
        if current is not None:
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(paths.digest_tag(self.name, current, tag))
        if announce:
            self.changed()

    async def _read(self, tag: Tag) -> Digest | None:
        """Where the tag points in storage now (no cache); None: nowhere readable."""
        with contextlib.suppress(PathNotFound, RegistryError):
            return paths.parse_link(
                await self.driver.get_content(paths.tag_current_link(self.name, tag))
            )
        return None

    async def page(self, limit: int, last: str | None) -> tuple[list[str], bool]:
        """Up to ``limit`` tags after ``last`` in the driver's listing order, and whether more
        follow; NameUnknown when the repository does not exist."""
        try:
            children, more = await self.driver.list_page(paths.tags_dir(self.name), last, limit)
        except PathNotFound:
            children, more = [], False
        if not children:
            await self._exists()
        return [child.rpartition("/")[2] for child in children], more

    async def listing_version(self) -> tuple[int, int] | None:
        """What changes whenever a tag is added or removed, by any writer, where the driver
        can tell (``StorageDriver.listing_version``); None otherwise."""
        return await self.driver.listing_version(paths.tags_dir(self.name))

    async def _exists(self) -> None:
        try:
            await self.driver.stat(paths.repository_dir(self.name))
        except PathNotFound:
            raise NameUnknown({"name": self.name.value}) from None

    async def all(self) -> list[str]:
        """Every tag, sorted; NameUnknown when the repository has none."""
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
        return sorted(child.rpartition("/")[2] for child in children)

    async def lookup(self, digest: Digest) -> list[str]:
        """The tags currently pointing at ``digest``: from its index when that is complete,
        otherwise by reading every tag."""
        try:
            await self.driver.stat(paths.digest_tags_complete(self.name, digest))
        except PathNotFound:
            return await self._scan(digest)
        try:
            entries = await self.driver.list(paths.digest_tags_list_dir(self.name, digest))
        except PathNotFound:
            return []
        names: list[Tag] = []
        for entry in entries:
            with contextlib.suppress(RegistryError):
                names.append(Tag(entry.rpartition("/")[2]))
        found: list[str] = []
        step = self.lookup_concurrency
        for start in range(0, len(names), step):
            batch = names[start : start + step]
            targets = await asyncio.gather(*(self._read(tag) for tag in batch))
            found.extend(
                t.value for t, target in zip(batch, targets, strict=True) if target == digest
            )
        return sorted(found)

    async def _scan(self, digest: Digest) -> list[str]:
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
