"""Digests named by ``<dir>/<alg>/<hex>`` directories (a repository's links)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from wharf.errors import RegistryError
from wharf.reference import Digest
from wharf.storage.driver import PathNotFound, StorageDriver

__all__ = ["linked_digests"]


async def _children(driver: StorageDriver, directory: str) -> list[str]:
    try:
        return sorted(await driver.list(directory))
    except PathNotFound:
        return []


async def linked_digests(driver: StorageDriver, directory: str) -> AsyncIterator[Digest]:
    """Each digest with a directory below ``directory``, sorted by algorithm and hex."""
    for algorithm_dir in await _children(driver, directory):
        algorithm = algorithm_dir.rpartition("/")[2]
        for entry in await _children(driver, algorithm_dir):
            try:
                digest = Digest(algorithm, entry.rpartition("/")[2])
            except RegistryError:
                continue  # not a digest: nothing a link can name
            yield digest
