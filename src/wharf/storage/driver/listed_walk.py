"""``walk`` for stores that list keys, not directories (S3, Swift, GCS, Azure).

Their listings give the files in key order (``walk_files``, a page a batch); the directories
of a walk are the prefixes of the files' paths, each given once, before its first file."""

from __future__ import annotations

from collections.abc import AsyncIterator

from wharf.storage.driver.base import FileInfo

__all__ = ["walk_listed"]


async def walk_listed(path: str, batches: AsyncIterator[list[FileInfo]]) -> AsyncIterator[FileInfo]:
    """The files of ``batches`` (the files below ``path``, in key order), each after the
    directories above it that the files before it did not open."""
    base = "" if path == "/" else path
    opened: list[str] = []  # the directories above the last file, outermost first
    async for batch in batches:
        for info in batch:
            parts = info.path[len(base) + 1 :].split("/")
            above = [base + "/" + "/".join(parts[:i]) for i in range(1, len(parts))]
            common = 0
            while common < min(len(opened), len(above)) and opened[common] == above[common]:
                common += 1
            # Keys below one directory are contiguous: each is entered once.
            for directory in above[common:]:
                yield FileInfo(directory, 0, None, True)
            opened = above
            yield info
