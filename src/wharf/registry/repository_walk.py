"""Find every repository by listing the directories of ``repositories/``.

A directory is a repository when it holds one of the caller's marker directories; no
``_``-prefixed directory is descended. Both the catalog and garbage collection walk this way.

Directories are listed in batches through ``StorageDriver.list_many``, a few batches at once:
a filesystem lists a whole batch in one thread call (a thread hand-off per directory cost
about ten times the listing itself), S3 lists the directories of a batch concurrently. The
directories waiting are kept depth first, so they are the siblings along one path rather than
a whole level of the tree, and memory does not grow with the number of repositories.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from wharf.storage import paths
from wharf.storage.driver import Listings, StorageDriver

__all__ = ["BATCH", "BATCHES_AT_ONCE", "find_repositories"]

#: Directories per ``list_many`` call, and calls under way at once.
BATCH = 64
BATCHES_AT_ONCE = 4


async def find_repositories(
    driver: StorageDriver, markers: Collection[str], starts: Collection[str] = ()
) -> list[str]:
    """The repository directories below ``repositories/``, relative to it, sorted;
    ``starts``: only those at or below these directories of ``repositories/`` (full paths)."""
    root = paths.repositories_dir()
    found: list[str] = []
    waiting = list(starts) if starts else [root]
    batches: dict[asyncio.Task[Listings], list[str]] = {}  # under way, with what they list
    try:
        while waiting or batches:
            while waiting and len(batches) < BATCHES_AT_ONCE:
                batch = waiting[-BATCH:]
                del waiting[-BATCH:]
                batches[asyncio.ensure_future(driver.list_many(batch))] = batch
            done, _ = await asyncio.wait(batches, return_when=asyncio.FIRST_COMPLETED)
            errors = [task.exception() for task in done]  # every one retrieved, then the first
            if error := next((error for error in errors if error is not None), None):
                raise error
            for task in done:
                for directory, children in zip(batches.pop(task), task.result(), strict=True):
                    if children is None:
                        continue  # deleted while the walk went on
                    names = {child.rpartition("/")[2]: child for child in children}
                    if directory != root and any(marker in names for marker in markers):
                        found.append(directory[len(root) + 1 :])
                    waiting.extend(path for name, path in names.items() if not name.startswith("_"))
    finally:
        for task in batches:
            task.cancel()
        if batches:
            await asyncio.wait(batches)
    found.sort()
    return found
