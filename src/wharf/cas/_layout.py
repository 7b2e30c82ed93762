"""Where a content-addressed repository keeps its objects, uploads and collection markers.

``objects`` (reflow's layout; the default)::

    <prefix>/objects/<alg>/<hex>        reflow writes objects/<alg>:<hex>; a driver path has
    <prefix>/uploads/<id>               no colon, so the algorithm is a directory here
    <prefix>/collections/<id>           one marker per collection under way

``registry`` (a registry's blob store: a bucket shared with wharf or Distribution, whose
clients then find every object as a blob, and whose garbage collection removes what no
manifest references)::

    <prefix>/docker/registry/v2/blobs/<alg>/<xx>/<hex>/data
    <prefix>/cas/uploads/<id>
    <prefix>/cas/collections/<id>
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from wharf.errors import RegistryError
from wharf.reference import Digest
from wharf.registry.gc.inventory import walk_blobs
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver

__all__ = ["LAYOUTS", "Layout", "StoredObject"]


@dataclass(frozen=True, slots=True)
class StoredObject:
    digest: Digest
    size: int
    modified: datetime | None


class Layout:
    name = "objects"
    work = ""

    def object(self, digest: Digest) -> str:
        return f"/objects/{digest.algorithm}/{digest.hex}"

    def removal(self, digest: Digest) -> tuple[str, bool]:
        """What a collection deletes to remove an object, and whether that is a directory of
        its own, which takes the object's lease with it (a lease of a file that is gone is
        given back as deleted; otherwise released, or its holder would keep it until it
        expired on stores whose leases are files beside the object)."""
        return self.object(digest), False

    def upload(self, upload_id: str) -> str:
        return f"{self.uploads()}/{upload_id}"

    def uploads(self) -> str:
        return f"{self.work}/uploads"

    def collections(self) -> str:
        return f"{self.work}/collections"

    async def objects(self, driver: StorageDriver) -> AsyncIterator[StoredObject]:
        try:
            algorithms = sorted(await driver.list("/objects"))
        except PathNotFound:
            return
        for algorithm_dir in algorithms:
            async for files in driver.walk_files(algorithm_dir):
                for info in files:
                    try:
                        digest = Digest(
                            algorithm_dir.rpartition("/")[2], info.path.rpartition("/")[2]
                        )
                    except RegistryError:
                        continue
                    yield StoredObject(digest, info.size, info.modified)


class RegistryLayout(Layout):
    name = "registry"
    work = "/cas"

    def object(self, digest: Digest) -> str:
        return paths.blob_data(digest)

    def removal(self, digest: Digest) -> tuple[str, bool]:
        return paths.blob_dir(digest), True

    async def objects(self, driver: StorageDriver) -> AsyncIterator[StoredObject]:
        with contextlib.suppress(PathNotFound):
            async for entry in walk_blobs(driver):
                yield StoredObject(entry.digest, entry.size, entry.modified)


LAYOUTS: dict[str, Layout] = {"objects": Layout(), "registry": RegistryLayout()}
