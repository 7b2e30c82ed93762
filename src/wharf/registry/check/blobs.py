"""The blob phase: every ``blobs/<alg>/<xx>/<hex>/data`` hashes to its name.

The walk is the driver's (one ``scandir`` per directory on a filesystem, one listing page at a
time on S3), consumed as it comes. Each data file streams through the driver's reader in
1 MiB chunks, hashed in the executor while the next chunk is read, ``concurrency`` blobs at
once: memory stays at two chunks per blob whatever the blob's size.

A blob that fails to verify is hashed again after the recheck delay before it is reported
(and, with repair, removed: a client pushing it again stores it whole). A repair racing a
client that pushes the same digest at that moment can remove the copy that push relied on;
the push's manifest PUT then fails and the client pushes again, or, if it was already
accepted, the next check reports the manifest's missing reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime

from wharf.errors import RegistryError
from wharf.reference import Digest
from wharf.registry.check.checker import Checker, Finding, LeftAlone, Look, Suspects
from wharf.registry.check.report import Kind
from wharf.registry.tasks import for_each
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver

__all__ = ["HASH_CHUNK", "QUIET_SECONDS", "check_blobs", "hash_file"]

HASH_CHUNK = 1 << 20
#: Chunks smaller than this are hashed on the event loop: a thread hand-off costs more.
_INLINE = 256 << 10
#: A directory changed more recently than this may have a write under way that the driver's
#: listing cannot show (the filesystem's temporary files): its repair waits.
QUIET_SECONDS = 60.0


async def hash_file(
    driver: StorageDriver, path: str, algorithm: str, executor: Executor
) -> tuple[str, int]:
    """The hex digest and size of a file, streamed through the driver's reader."""
    hasher = hashlib.new(algorithm)
    loop = asyncio.get_running_loop()
    size = 0
    hashing: asyncio.Future[None] | None = None
    async with await driver.reader(path) as reader:
        try:
            async for chunk in reader.chunks(HASH_CHUNK):
                if hashing is not None:
                    await hashing  # one update at a time: hashlib objects are not shared
                    hashing = None
                size += len(chunk)
                if len(chunk) < _INLINE:
                    hasher.update(chunk)
                else:
                    hashing = loop.run_in_executor(executor, hasher.update, chunk)
        finally:
            if hashing is not None:
                await hashing
    return hasher.hexdigest(), size


@dataclass(frozen=True, slots=True)
class _Data:
    path: str
    digest: Digest


async def check_blobs(checker: Checker) -> None:
    checker.progress.phase("checking blobs")
    suspects = checker.suspects(None)

    async def verify(data: _Data) -> None:
        checker.stats.blobs += 1
        await suspects.look(_verify(checker, data.path, data.digest))
        checker.progress.advance()

    await for_each(_data_files(checker, suspects), verify, checker.concurrency)
    checker.progress.done()
    await suspects.settle()


async def _data_files(checker: Checker, suspects: Suspects) -> AsyncIterator[_Data]:
    """The walk's data files at their place; what else it meets is looked at on the way."""
    base = paths.blobs_dir()
    directory: str | None = None  # the blob directory the walk is in
    has_data = False
    async for info in checker.driver.walk(base):
        if directory is not None and not info.path.startswith(directory + "/"):
            if not has_data:
                await suspects.look(_without_data(checker, directory))
            directory = None
        parts = info.path[len(base) + 1 :].split("/")
        if info.is_dir:
            if len(parts) == 3:
                directory, has_data = info.path, False
            continue
        if len(parts) != 4 or parts[3] != "data":
            continue  # nothing wharf or Distribution writes: not the check's to judge
        has_data = True
        try:
            digest = Digest(parts[0], parts[2])
        except RegistryError:
            await suspects.look(_bad_name(checker, info.path))
            continue
        if parts[1] != digest.hex[:2]:
            await suspects.look(_misplaced(checker, info.path, digest))
            continue
        yield _Data(info.path, digest)
    if directory is not None and not has_data:
        await suspects.look(_without_data(checker, directory))


def _verify(checker: Checker, path: str, digest: Digest) -> Look:
    async def look() -> list[Finding]:
        try:
            actual, size = await hash_file(checker.driver, path, digest.algorithm, checker.executor)
        except PathNotFound:
            return []  # deleted meanwhile (garbage collection): not corruption
        checker.stats.bytes_hashed += size
        if actual == digest.hex:
            checker.verified(digest)
            return []
        checker.corrupt(digest, removed=False)

        async def remove() -> str:
            await checker.driver.delete(paths.blob_dir(digest))
            checker.corrupt(digest, removed=True)
            return "removed"

        detail = f"its {size} bytes hash to {digest.algorithm}:{actual}"
        return [Finding(Kind.BLOB_CORRUPT, path, detail, remove)]

    return look


def _bad_name(checker: Checker, path: str) -> Look:
    async def look() -> list[Finding]:
        try:
            await checker.driver.stat(path)
        except PathNotFound:
            return []
        detail = "its directory does not name a digest of a supported algorithm"
        return [Finding(Kind.BLOB_NAME_INVALID, path, detail, why_not="left for an operator")]

    return look


def _misplaced(checker: Checker, path: str, digest: Digest) -> Look:
    directory = path.rpartition("/")[0]

    async def repair() -> str:
        actual, _ = await hash_file(checker.driver, path, digest.algorithm, checker.executor)
        if actual != digest.hex:
            await checker.driver.delete(directory)
            return "removed: its bytes do not hash to its name"
        try:
            there, _ = await hash_file(
                checker.driver, paths.blob_data(digest), digest.algorithm, checker.executor
            )
        except PathNotFound:
            there = ""
        if there == digest.hex:
            await checker.driver.delete(directory)
            return "removed: the blob is intact at its place"
        await checker.driver.move(path, paths.blob_data(digest))
        checker.verified(digest)
        with contextlib.suppress(PathNotFound):  # stores without directories leave nothing
            await checker.driver.delete(directory)
        return "moved to its place"

    async def look() -> list[Finding]:
        try:
            await checker.driver.stat(path)
        except PathNotFound:
            return []
        detail = f"the data of {digest} lies outside {paths.blob_dir(digest)}"
        return [Finding(Kind.BLOB_MISPLACED, path, detail, repair)]

    return look


def _without_data(checker: Checker, directory: str) -> Look:
    async def repair() -> str:
        info = await checker.driver.stat(directory)
        if info.modified is not None:
            age = (datetime.now(UTC) - info.modified).total_seconds()
            if age < QUIET_SECONDS:
                raise LeftAlone("changed in the last minute: a write may be under way")
        if await _children(checker.driver, directory):
            raise LeftAlone("no longer empty")
        await checker.driver.delete(directory)
        return "removed the empty directory"

    async def look() -> list[Finding]:
        children = await _children(checker.driver, directory)
        for child in children:
            if child.rpartition("/")[2] == "data":
                try:
                    if not (await checker.driver.stat(child)).is_dir:
                        return []  # written meanwhile
                except PathNotFound:
                    pass
        try:
            await checker.driver.stat(directory)
        except PathNotFound:
            return []  # removed meanwhile
        if children:
            names = ", ".join(sorted(child.rpartition("/")[2] for child in children)[:5])
            detail = f"a blob directory without data, holding {names}"
            return [Finding(Kind.BLOB_DATA_MISSING, directory, detail, why_not="not empty")]
        detail = "an empty blob directory"
        return [Finding(Kind.BLOB_DATA_MISSING, directory, detail, repair)]

    return look


async def _children(driver: StorageDriver, directory: str) -> list[str]:
    try:
        return await driver.list(directory)
    except PathNotFound:
        return []
