"""Manifests: stored as blobs, linked into a repository under ``_manifests/revisions``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wharf.coherence.caches import RegistryCache
from wharf.config.validation import ValidationConfig
from wharf.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    RegistryError,
)
from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry import media
from wharf.registry.blobs import BlobStore, RepositoryBlobs
from wharf.registry.completeness import required_references
from wharf.registry.gc.guard import WriteGuard, protect
from wharf.registry.manifest_parse import ParsedManifest, digest_of, parse_manifest
from wharf.registry.referrers import Referrers
from wharf.registry.tags import Tags
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver

__all__ = ["Manifests", "StoredManifest", "detect_media_type"]

#: Concurrent existence checks while validating a manifest's references.
_CHECK_CONCURRENCY = 32
#: Tags written at once by a push that names several.
_TAG_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    body: bytes
    media_type: str


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def detect_media_type(body: bytes) -> str:
    """The media type of stored manifest bytes, also those stored without ``mediaType``."""
    document = _loads(body)
    if not isinstance(document, dict):
        return media.OCI_MANIFEST
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if document.get("schemaVersion") == 1:
        return media.DOCKER_SCHEMA1_SIGNED if "signatures" in document else media.DOCKER_SCHEMA1
    return media.OCI_INDEX if "manifests" in document else media.OCI_MANIFEST


def subject_of(body: bytes) -> Digest | None:
    document = _loads(body)
    if isinstance(document, dict) and isinstance(document.get("subject"), dict):
        with contextlib.suppress(RegistryError, TypeError):
            return Digest.parse(document["subject"]["digest"])
    return None


class Manifests:
    """``changed`` is called after each put or delete is stored (``Repository.changed``);
    ``validation`` says which references of a push must already be in the repository."""

    def __init__(
        self,
        driver: StorageDriver,
        store: BlobStore,
        blobs: RepositoryBlobs,
        tags: Tags,
        referrers: Referrers,
        cache: RegistryCache,
        changed: Callable[[], None],
        validation: ValidationConfig | None = None,
        created: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.driver = driver
        #: Awaited before a revision link is written: the catalog lists the repository.
        self.created = created
        self.store = store
        self.blobs = blobs
        self.tags = tags
        self.referrers = referrers
        self.cache = cache
        self.changed = changed
        self.validation = validation or ValidationConfig()
        self.name: RepositoryName = blobs.name

    async def exists(self, digest: Digest) -> bool:
        token = self.cache.generations.token(self.name.value)
        key = (self.name.value, "m", str(digest))
        cached = self.cache.links.get(key, token)
        if cached is not None:
            return cached
        try:
            target = paths.parse_link(
                await self.driver.get_content(paths.manifest_revision_link(self.name, digest))
            )
            linked = target == digest
        except (PathNotFound, RegistryError):
            linked = False
        self.cache.links.put(key, token, linked)
        return linked

    async def get(self, digest: Digest) -> StoredManifest:
        if not await self.exists(digest):
            raise ManifestUnknown({"digest": str(digest)})
        cached = self.cache.manifests.get(str(digest))
        if cached is not None:
            return StoredManifest(digest, cached[0], cached[1])
        try:
            body = await self.store.get(digest)
        except BlobUnknown:
            raise ManifestUnknown({"digest": str(digest)}) from None
        media_type = detect_media_type(body)
        self.cache.manifests.put(str(digest), len(body), (body, media_type))
        return StoredManifest(digest, body, media_type)

    async def resolve(self, reference: Tag | Digest) -> StoredManifest:
        digest = await self.tags.get(reference) if isinstance(reference, Tag) else reference
        return await self.get(digest)

    async def put(
        self,
        body: bytes,
        content_type: str | None,
        reference: Tag | Digest,
        *,
        tags: Sequence[Tag] = (),
        guard: WriteGuard | None = None,
    ) -> ParsedManifest:
        """Store a manifest under its digest, and point ``reference`` (when a tag) and every
        one of ``tags`` at it. A manifest pushed by digest keeps that digest's algorithm, so a
        sha512 push is stored, linked and tagged under ``sha512/`` as Distribution does."""
        algorithm = reference.algorithm if isinstance(reference, Digest) else "sha256"
        manifest = parse_manifest(body, content_type, algorithm)
        if isinstance(reference, Digest) and manifest.digest != reference:
            raise DigestInvalid(
                {"expected": str(reference), "computed": str(manifest.digest)},
                message="manifest digest did not match the reference",
            )
        targets = [reference] if isinstance(reference, Tag) else []
        targets += [tag for tag in tags if tag not in targets]
        # From the checks to the last link, a running garbage collection must not delete what
        # this manifest references: the guard pins it (wharf.registry.gc.safety).
        async with protect(guard, manifest, self.cache.generations):
            await self._check_references(manifest)
            await self.store.put(manifest.digest, body)
            if self.created is not None:
                await self.created()
            revision = paths.manifest_revision_link(self.name, manifest.digest)
            try:
                await self.driver.stat(revision)
            except PathNotFound:
                # Stored first by wharf: every tag of it will be in its tag index.
                await self.driver.put_content(
                    paths.digest_tags_complete(self.name, manifest.digest), b""
                )
            await self.driver.put_content(
                revision,
                paths.link_content(manifest.digest),
            )
            if manifest.subject is not None:
                await self.referrers.add(manifest.subject.digest, manifest)
            for start in range(0, len(targets), _TAG_CONCURRENCY):
                batch = targets[start : start + _TAG_CONCURRENCY]
                await asyncio.gather(
                    *(self.tags.tag(tag, manifest.digest, announce=False) for tag in batch)
                )
        self.changed()
        return manifest

    async def _check_references(self, manifest: ParsedManifest) -> None:
        semaphore = asyncio.Semaphore(_CHECK_CONCURRENCY)

        async def missing_blob(digest: Digest) -> bool:
            async with semaphore:
                try:
                    await self.blobs.stat(digest)
                except BlobUnknown:
                    return True
                return False

        async def missing_manifest(digest: Digest) -> bool:
            async with semaphore:
                return not await self.exists(digest)

        blobs, children = required_references(manifest, self.validation)
        checks = [missing_blob(d.digest) for d in blobs]
        checks += [missing_manifest(d.digest) for d in children]
        results = await asyncio.gather(*checks)
        wanted = blobs + children
        for descriptor, missing in zip(wanted, results, strict=True):
            if missing:
                raise ManifestBlobUnknown({"digest": str(descriptor.digest)})

    async def delete(self, digest: Digest) -> None:
        """Unlink a revision, the tags pointing at it, and its entry as a referrer."""
        stored = await self.get(digest)
        try:
            for tag in await self.tags.lookup(digest):
                with contextlib.suppress(ManifestUnknown):
                    await self.tags.untag(Tag(tag), announce=False)
            subject = subject_of(stored.body)
            if subject is not None:
                await self.referrers.remove(subject, digest)
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(paths.digest_tags_dir(self.name, digest))
            try:
                await self.driver.delete(paths.manifest_revision_dir(self.name, digest))
            except PathNotFound:
                raise ManifestUnknown({"digest": str(digest)}) from None
        finally:
            self.changed()  # whatever part of it was stored


__all__ += ["digest_of", "subject_of"]
