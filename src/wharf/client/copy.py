"""Copying images between registries, and to and from OCI layout directories.

``copy(source, destination)`` copies the manifest a reference names with everything it needs:
an index with each child manifest (all platforms, or those ``platforms`` keeps), an image with
its config and layers. Blobs the destination has are skipped; blobs of another repository of
the same registry are mounted; others pass through a temporary file (never whole in memory),
verified against their digest on the way. Manifests keep their exact bytes, so digests do not
change. ``progress`` is called with each blob's digest and the bytes moved of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf.client.errors import DigestMismatch
from wharf.client.layout import INDEX_MEDIA_TYPE, OCILayout
from wharf.client.registry import AsyncRegistryClient, Manifest, digest_of

__all__ = ["BlobProgress", "LayoutImage", "RegistryImage", "copy"]

#: Called with a blob's digest, the bytes copied of it and its size.
BlobProgress = Callable[[str, int, int | None], None]
#: Keeps the children of an index whose ``platform`` it returns True for.
PlatformFilter = Callable[[dict[str, Any]], bool]

_INDEX_TYPES = {INDEX_MEDIA_TYPE, "application/vnd.docker.distribution.manifest.list.v2+json"}


@dataclass(frozen=True, slots=True)
class RegistryImage:
    client: AsyncRegistryClient
    repository: str
    reference: str  # a tag or a digest


@dataclass(frozen=True, slots=True)
class LayoutImage:
    path: Path
    reference: str  # a tag (``org.opencontainers.image.ref.name``) or a digest


Image = RegistryImage | LayoutImage


async def copy(
    source: Image,
    destination: Image,
    *,
    platforms: PlatformFilter | None = None,
    progress: BlobProgress | None = None,
) -> str:
    """Copy ``source`` to ``destination``; the digest of what was copied."""
    if isinstance(destination, LayoutImage):
        await asyncio.to_thread(OCILayout(destination.path).prepare)
    top = await _manifest(source, source.reference)
    with tempfile.TemporaryDirectory(prefix="wharf-copy-") as scratch:
        job = _Copy(source, destination, Path(scratch), platforms, progress)
        await job.manifest(top)
    await _put_manifest(destination, destination.reference, top)
    return top.digest


async def _manifest(image: Image, reference: str) -> Manifest:
    if isinstance(image, RegistryImage):
        return await image.client.get_manifest(image.repository, reference)
    layout = OCILayout(image.path)
    if ":" in reference:  # a digest: a child of an index is a blob, not in index.json
        digest, media_type = reference, ""
    else:
        descriptor = await asyncio.to_thread(layout.resolve, reference)
        digest, media_type = descriptor["digest"], descriptor.get("mediaType", "")
    body = await asyncio.to_thread(layout.read_blob, digest)
    if digest_of(body, digest.partition(":")[0]) != digest:
        raise DigestMismatch(f"{layout.path}: {digest} does not match its bytes")
    return Manifest(body, media_type or json.loads(body).get("mediaType", ""), digest)


async def _put_manifest(image: Image, reference: str, manifest: Manifest) -> None:
    if isinstance(image, RegistryImage):
        await image.client.put_manifest(
            image.repository, reference, manifest.body, manifest.media_type
        )
        return
    layout = OCILayout(image.path)
    await asyncio.to_thread(layout.write_blob, manifest.digest, manifest.body)
    descriptor = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": len(manifest.body),
    }
    await asyncio.to_thread(layout.tag, descriptor, reference)


class _Copy:
    def __init__(
        self,
        source: Image,
        destination: Image,
        scratch: Path,
        platforms: PlatformFilter | None,
        progress: BlobProgress | None,
    ) -> None:
        self.source = source
        self.destination = destination
        self.scratch = scratch
        self.platforms = platforms
        self.progress = progress

    async def manifest(self, manifest: Manifest) -> None:
        document = json.loads(manifest.body)
        media_type = manifest.media_type or document.get("mediaType", "")
        if media_type in _INDEX_TYPES or "manifests" in document:
            children = [
                child
                for child in document.get("manifests", [])
                if self.platforms is None or self.platforms(child.get("platform") or {})
            ]
            for child in children:
                fetched = await _manifest(self.source, child["digest"])
                await self.manifest(fetched)
                await _put_manifest(self.destination, child["digest"], fetched)
            return
        blobs = [document["config"]] if isinstance(document.get("config"), dict) else []
        blobs += [layer for layer in document.get("layers", []) if not layer.get("urls")]
        await asyncio.gather(*(self.blob(d["digest"], d.get("size")) for d in blobs))

    async def blob(self, digest: str, size: int | None) -> None:
        source, destination = self.source, self.destination
        if isinstance(destination, RegistryImage):
            client = destination.client
            if await client.blob_size(destination.repository, digest) is not None:
                return
            if (
                isinstance(source, RegistryImage)
                and source.client is client
                and source.repository != destination.repository
                and await client.mount_blob(destination.repository, digest, source.repository)
            ):
                return
        else:
            layout = OCILayout(destination.path)
            if await asyncio.to_thread(layout.has_blob, digest):
                return
        path = await self._fetched(digest, size)
        if isinstance(destination, RegistryImage):
            await destination.client.push_blob(destination.repository, path, digest)
        else:
            layout = OCILayout(destination.path)
            temporary = await asyncio.to_thread(layout.temporary, digest)
            await asyncio.to_thread(path.replace, temporary)
            await asyncio.to_thread(layout.commit, temporary, digest)

    async def _fetched(self, digest: str, size: int | None) -> Path:
        """The blob in a file: downloaded (verified), or the source layout's own."""
        source = self.source
        if isinstance(source, LayoutImage):
            scratch = self.scratch / digest.replace(":", "-")
            origin = OCILayout(source.path).blob_path(digest)
            if await asyncio.to_thread(_copied_digest, origin, scratch, digest) != digest:
                raise DigestMismatch(f"{origin} does not hash to {digest}")
            return scratch
        target = self.scratch / digest.replace(":", "-")

        def moved(done: int, total: int | None) -> None:
            if self.progress:
                self.progress(digest, done, total if total is not None else size)

        await source.client.download_blob(source.repository, digest, target, progress=moved)
        return target


def _copied_digest(source: Path, target: Path, digest: str) -> str:
    """Copy ``source`` to ``target``; the digest of what was copied."""
    hasher = hashlib.new(digest.partition(":")[0])
    with source.open("rb") as reading, target.open("wb") as writing:
        while piece := reading.read(1 << 20):
            hasher.update(piece)
            writing.write(piece)
    return f"{digest.partition(':')[0]}:{hasher.hexdigest()}"
