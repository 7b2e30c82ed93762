"""Damaging a store the registry wrote, through its driver, for the check's tests."""

from __future__ import annotations

from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry.check import CheckReport, Kind
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver


def digest(text: str) -> Digest:
    return Digest.parse(text)


def repo(name: str) -> RepositoryName:
    return RepositoryName(name)


def found(report: CheckReport) -> set[tuple[Kind, str]]:
    """Each problem as (kind, path)."""
    return {(problem.kind, problem.path) for problem in report.problems}


class Damage:
    """Ways to break a store, each the way a disk, an operator or a bug would."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    async def flip(self, blob: str, offset: int = 0) -> str:
        """Flip one bit of a blob; its data path."""
        path = paths.blob_data(digest(blob))
        data = bytearray(await self.driver.get_content(path))
        data[offset] ^= 0x01
        await self.driver.put_content(path, bytes(data))
        return path

    async def truncate(self, blob: str, size: int) -> str:
        path = paths.blob_data(digest(blob))
        data = await self.driver.get_content(path)
        await self.driver.put_content(path, data[:size])
        return path

    async def delete_blob(self, blob: str) -> None:
        await self.driver.delete(paths.blob_dir(digest(blob)))

    async def write(self, path: str, content: bytes) -> str:
        await self.driver.put_content(path, content)
        return path

    async def delete(self, path: str) -> None:
        await self.driver.delete(path)

    async def exists(self, path: str) -> bool:
        try:
            await self.driver.stat(path)
        except PathNotFound:
            return False
        return True

    async def blobs(self) -> set[str]:
        """The digest of every blob data file at its place."""
        found: set[str] = set()
        base = paths.blobs_dir()
        async for info in self.driver.walk(base):
            parts = info.path[len(base) + 1 :].split("/")
            if not info.is_dir and len(parts) == 4 and parts[3] == "data":
                found.add(f"{parts[0]}:{parts[2]}")
        return found


def layer_link(name: str, blob: str) -> str:
    return paths.layer_link(repo(name), digest(blob))


def revision_link(name: str, manifest: str) -> str:
    return paths.manifest_revision_link(repo(name), digest(manifest))


def current_link(name: str, tag: str) -> str:
    return paths.tag_current_link(repo(name), Tag(tag))


def index_link(name: str, tag: str, manifest: str) -> str:
    return paths.tag_index_link(repo(name), Tag(tag), digest(manifest))


def referrer_entry(name: str, subject: str, referrer: str) -> str:
    return paths.referrer_descriptor(repo(name), digest(subject), digest(referrer))
