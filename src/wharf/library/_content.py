"""A repository's manifests and tags: Distribution's ManifestService and TagService over
wharf's manifest and tag services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from wharf.library._listing import linked_digests
from wharf.library._values import as_digest, as_reference, as_tag
from wharf.reference import Digest, Tag
from wharf.registry.gc.guard import WriteGuard
from wharf.registry.manifest_parse import digest_of
from wharf.registry.manifests import Manifests as ManifestService
from wharf.registry.manifests import StoredManifest
from wharf.registry.tags import Tags as TagService
from wharf.storage import paths

__all__ = ["Manifests", "Tags"]


class Manifests:
    def __init__(
        self,
        manifests: ManifestService,
        guard: WriteGuard | None,
        check: Callable[[], None],
    ) -> None:
        self._manifests = manifests
        self._guard = guard
        self._check = check

    async def exists(self, digest: str | Digest) -> bool:
        return await self._manifests.exists(as_digest(digest))

    async def get(self, reference: str | Tag | Digest) -> StoredManifest:
        """The manifest a tag points at, or the one with a digest; ManifestUnknown if none."""
        return await self._manifests.resolve(as_reference(reference))

    async def put(
        self,
        body: bytes,
        media_type: str | None = None,
        *,
        tag: str | Tag | None = None,
    ) -> Digest:
        """Validate and store a manifest (its media type from ``mediaType`` in the body when
        ``media_type`` is None), pointing ``tag`` at it; its digest. ManifestInvalid for a
        manifest that is not valid, ManifestBlobUnknown when something it references is not
        in the repository."""
        self._check()
        reference: Tag | Digest = as_tag(tag) if tag is not None else digest_of(body)
        parsed = await self._manifests.put(body, media_type, reference, guard=self._guard)
        return parsed.digest

    async def delete(self, digest: str | Digest) -> None:
        """Remove the manifest from the repository, with the tags pointing at it and its
        referrers entry; the bytes stay for garbage collection."""
        self._check()
        await self._manifests.delete(as_digest(digest))

    def enumerate(self) -> AsyncIterator[Digest]:
        """Every manifest revision the repository links, sorted."""
        return linked_digests(
            self._manifests.driver, paths.manifest_revisions_dir(self._manifests.name)
        )


class Tags:
    def __init__(self, tags: TagService, check: Callable[[], None]) -> None:
        self._tags = tags
        self._check = check

    async def get(self, tag: str | Tag) -> Digest:
        """The digest ``tag`` points at; ManifestUnknown when there is no such tag."""
        return await self._tags.get(as_tag(tag))

    async def tag(self, tag: str | Tag, digest: str | Digest) -> None:
        """Point ``tag`` at a manifest (Distribution does not check it exists; nor does this)."""
        self._check()
        await self._tags.tag(as_tag(tag), as_digest(digest))

    async def untag(self, tag: str | Tag) -> None:
        self._check()
        await self._tags.untag(as_tag(tag))

    async def all(self) -> list[str]:
        """Every tag, sorted; NameUnknown when the repository does not exist."""
        return await self._tags.all()

    async def lookup(self, digest: str | Digest) -> list[str]:
        """The tags pointing at ``digest``."""
        return await self._tags.lookup(as_digest(digest))
