"""The referrers index: for each subject, the descriptors of the manifests that refer to it.

Kept at push time under ``_referrers/<subject>/<referrer>/descriptor`` so that a referrers
request reads only its subject's entries and never scans the repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from wharf.errors import RegistryError
from wharf.reference import Digest, RepositoryName
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver

if TYPE_CHECKING:
    from wharf.registry.manifest_parse import ParsedManifest

__all__ = ["Referrers"]

#: Referrers listed per subject at most; beyond it the oldest entries are still stored but
#: a client must narrow its request with an artifactType filter.
MAX_REFERRERS = 10_000


class Referrers:
    def __init__(self, driver: StorageDriver, name: RepositoryName) -> None:
        self.driver = driver
        self.name = name

    async def add(self, subject: Digest, manifest: ParsedManifest) -> None:
        await self.driver.put_content(
            paths.referrer_descriptor(self.name, subject, manifest.digest),
            json.dumps(manifest.descriptor().to_json(), separators=(",", ":")).encode(),
        )

    async def remove(self, subject: Digest, referrer: Digest) -> None:
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.referrer_dir(self.name, subject, referrer))

    async def find(self, subject: Digest, artifact_type: str | None = None) -> list[dict[str, Any]]:
        referrers: list[Digest] = []
        for algorithm_dir in await self._list(paths.referrers_dir(self.name, subject)):
            algorithm = _basename(algorithm_dir)
            for entry in await self._list(algorithm_dir):
                with contextlib.suppress(RegistryError):
                    referrers.append(Digest(algorithm, _basename(entry)))
        referrers.sort(key=str)

        async def load(referrer: Digest) -> dict[str, Any] | None:
            try:
                content = await self.driver.get_content(
                    paths.referrer_descriptor(self.name, subject, referrer)
                )
                value = json.loads(content)
            except (PathNotFound, ValueError):
                return None
            return value if isinstance(value, dict) else None

        found = await asyncio.gather(*(load(r) for r in referrers[:MAX_REFERRERS]))
        descriptors = [d for d in found if d is not None]
        if artifact_type is not None:
            descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
        return descriptors

    async def _list(self, path: str) -> list[str]:
        try:
            return await self.driver.list(path)
        except PathNotFound:
            return []


def _basename(path: str) -> str:
    return path.rpartition("/")[2]
