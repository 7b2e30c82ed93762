"""Read what the collector needs from storage: repositories, their links, tags and sessions.

Everything is read through :mod:`wharf.storage.paths` and ``walk``, which lists a directory
with each entry's size and modification time in one pass where the driver can (one
``scandir`` per directory on the filesystem, one listing per page on S3). Whatever cannot be
understood (a name that is not a digest or a tag, a link that cannot be read) makes the
repository *uncertain*: the collector then removes no manifest from it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from wharf.errors import RegistryError
from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry.gc.safety import PendingUploads, read_pending_uploads
from wharf.registry.repository_walk import find_repositories
from wharf.storage import paths
from wharf.storage.driver import DriverError, PathNotFound, StorageDriver

__all__ = ["BlobEntry", "RepositoryInventory", "read_repository", "walk_blobs", "walk_repositories"]

#: Directories that make a directory a repository. Distribution lists one once it has
#: ``_layers``; ``_uploads`` counts here so that the sessions of a first push are seen.
_MARKERS = ("_layers", "_manifests", "_uploads")
_CONCURRENCY = 32


@dataclass(slots=True)
class RepositoryInventory:
    name: RepositoryName
    #: Revision digest -> modification time of its link.
    revisions: dict[Digest, datetime | None] = field(default_factory=dict)
    #: Tag -> the digest its current link names.
    tags: dict[str, Digest] = field(default_factory=dict)
    #: Every tag directory, also those without a readable current link.
    tag_names: list[str] = field(default_factory=list)
    #: Layer link digest -> modification time of the link.
    layers: dict[Digest, datetime | None] = field(default_factory=dict)
    pending: PendingUploads = field(default_factory=PendingUploads)
    #: Something here could not be read: no manifest is removed from this repository.
    uncertain: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BlobEntry:
    digest: Digest
    size: int
    modified: datetime | None


async def walk_repositories(driver: StorageDriver) -> list[RepositoryName]:
    """Every repository, read from storage now, in name order (as the walk finds them)."""
    found: list[RepositoryName] = []
    for directory in await find_repositories(driver, _MARKERS):
        with contextlib.suppress(RegistryError):
            found.append(RepositoryName(directory))
    return found


async def read_repository(driver: StorageDriver, name: RepositoryName) -> RepositoryInventory:
    inventory = RepositoryInventory(name)
    # Sessions before layer links: an upload completing meanwhile is then seen either as a
    # session or as a link (safety rule 4).
    inventory.pending = await read_pending_uploads(driver, name)
    async for digest, modified in _digest_links(driver, paths.layers_dir(name), inventory):
        inventory.layers[digest] = modified
    async for digest, modified in _digest_links(
        driver, paths.manifest_revisions_dir(name), inventory
    ):
        inventory.revisions[digest] = modified
    await _read_tags(driver, inventory)
    return inventory


async def _digest_links(
    driver: StorageDriver, base: str, inventory: RepositoryInventory
) -> AsyncIterator[tuple[Digest, datetime | None]]:
    """``<base>/<alg>/<hex>/link`` files, as digests with their link's modification time."""
    async for info in driver.walk(base):
        if info.is_dir:
            continue
        parts = info.path[len(base) + 1 :].split("/")
        if len(parts) != 3 or parts[2] != "link":
            continue  # not a link (Distribution writes nothing else here)
        try:
            yield Digest(parts[0], parts[1]), info.modified
        except RegistryError:
            inventory.uncertain.append(f"not a digest: {info.path}")


async def _read_tags(driver: StorageDriver, inventory: RepositoryInventory) -> None:
    name = inventory.name
    try:
        children = await driver.list(paths.tags_dir(name))
    except PathNotFound:
        return
    inventory.tag_names = sorted(child.rpartition("/")[2] for child in children)

    async def current(tag_name: str) -> None:
        try:
            tag = Tag(tag_name)
        except RegistryError:
            inventory.uncertain.append(f"not a tag: {tag_name!r}")
            return
        try:
            content = await driver.get_content(paths.tag_current_link(name, tag))
        except PathNotFound:
            return  # a tag being deleted, or its directory left behind by a driver
        except DriverError as error:
            inventory.uncertain.append(f"tag {tag_name}: {error}")
            return
        try:
            inventory.tags[tag_name] = paths.parse_link(content)
        except RegistryError:
            inventory.uncertain.append(f"tag {tag_name}: not a link")

    semaphore = asyncio.Semaphore(_CONCURRENCY)

    async def bounded(tag_name: str) -> None:
        async with semaphore:
            await current(tag_name)

    await asyncio.gather(*(bounded(t) for t in inventory.tag_names))


async def walk_blobs(driver: StorageDriver) -> AsyncIterator[BlobEntry]:
    """Every ``blobs/<alg>/<xx>/<hex>/data``; anything else under ``blobs/`` is left alone."""
    base = paths.blobs_dir()
    async for info in driver.walk(base):
        if info.is_dir:
            continue
        parts = info.path[len(base) + 1 :].split("/")
        if len(parts) != 4 or parts[3] != "data" or parts[1] != parts[2][:2]:
            continue
        with contextlib.suppress(RegistryError):
            yield BlobEntry(Digest(parts[0], parts[2]), info.size, info.modified)
