"""A mirrored repository's services: the local ones, falling back to the upstream.

As Distribution's ``registry/proxy`` does it, these decorate a repository's blob store,
manifest service and tag service. What the cache holds is served as any local content is; what
it lacks is fetched from the upstream, verified against its digest, stored through the normal
write path, then served. A manifest asked for by digest is the cache's once fetched; a tag is
checked upstream (a HEAD) when its last check is older than the mirror's ``tagcheck``, and
served from the cache when the upstream still points it at the same manifest or cannot be
reached. Only what is asked for is fetched: an index, not its other platforms' manifests.

Pushes, deletes and mounts are refused as Distribution refuses them: the upstream owns the
content. Everything stored is recorded for expiry (``expiry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING

from wharf.errors import (
    BlobUnknown,
    ManifestUnknown,
    RegistryError,
    TooManyRequests,
    Unavailable,
    Unsupported,
)
from wharf.reference import Digest, Tag
from wharf.registry.blobs import BlobInfo, RepositoryBlobs
from wharf.registry.decorating import delegating
from wharf.registry.manifest_parse import digest_of, parse_manifest
from wharf.registry.manifests import Manifests, StoredManifest, detect_media_type
from wharf.registry.proxy.expiry import Expiry
from wharf.registry.proxy.fetch import Fetches, Tee, fetch_id, wait_until
from wharf.registry.proxy.routes import Route
from wharf.registry.tags import Tags
from wharf.registry.uploads import FillBusy, Uploads
from wharf.storage import paths
from wharf.storage.driver import FileReader

if TYPE_CHECKING:
    from wharf.registry.namespace import Repository

__all__ = ["ProxyState", "decorate"]

log = logging.getLogger("wharf.proxy")

#: Tag checks remembered per process (a check is a HEAD upstream: cheap to repeat).
_TAG_CHECKS = 100_000


class ProxyState:
    """What one process keeps for every mirrored repository: its fetches in flight, when it
    last checked each tag upstream, the expiry records, and the counts the metrics show."""

    def __init__(self, expiry: Expiry) -> None:
        self.fetches = Fetches()
        self.expiry = expiry
        self.tag_checks: dict[tuple[str, str], tuple[Digest, float]] = {}
        #: (upstream, kind, result) -> requests; kind: manifest or blob; result: hit,
        #: miss (fetched from the upstream) or error.
        self.counts: dict[tuple[str, str, str], int] = {}
        #: upstream -> bytes fetched from it.
        self.fetched_bytes: dict[str, int] = {}

    def count(self, route: Route, kind: str, result: str) -> None:
        key = (route.mirror.config.name, kind, result)
        self.counts[key] = self.counts.get(key, 0) + 1

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        found = [
            ("wharf_mirror_requests_total", {"upstream": u, "kind": k, "result": r}, float(n))
            for (u, k, r), n in self.counts.items()
        ]
        found += [
            ("wharf_mirror_fetched_bytes_total", {"upstream": u}, float(n))
            for u, n in self.fetched_bytes.items()
        ]
        return found

    def checked(self, name: str, tag: str, digest: Digest) -> None:
        if len(self.tag_checks) >= _TAG_CHECKS:
            self.tag_checks.clear()
        self.tag_checks[(name, tag)] = (digest, time.monotonic())

    async def aclose(self) -> None:
        await self.fetches.aclose()


def _refused(route: Route) -> Unsupported:
    return Unsupported(
        {"upstream": route.mirror.config.url},
        message="this repository mirrors an upstream registry: it cannot be written to",
    )


@delegating
class ProxyBlobs(RepositoryBlobs):
    def __init__(
        self, inner: RepositoryBlobs, uploads: Uploads, route: Route, state: ProxyState
    ) -> None:
        vars(self).update(vars(inner))
        self._inner = inner
        self._uploads = uploads
        self._route = route
        self._state = state

    async def stat(self, digest: Digest) -> BlobInfo:
        try:
            info = await self._inner.stat(digest)
        except BlobUnknown:
            size = await self._route.mirror.upstream.blob_size(self._route.upstream_name, digest)
            return BlobInfo(digest, size)
        self._state.expiry.touched(self.name, digest)
        return info

    async def redirect_url(self, digest: Digest, method: str) -> str | None:
        if not await self._inner.is_linked(digest):
            return None  # a fetch, not a redirect to storage that does not hold it yet
        return await self._inner.redirect_url(digest, method)

    async def open(self, digest: Digest, offset: int = 0) -> FileReader:
        try:
            await self._inner.stat(digest)
        except BlobUnknown:
            self._state.count(self._route, "blob", "miss")
        else:
            self._state.count(self._route, "blob", "hit")
            return await self._inner.open(digest, offset)
        if offset:
            return await self._passed_through(digest, offset)
        return await self._fetch(digest)

    async def _passed_through(self, digest: Digest, offset: int) -> FileReader:
        """A range of a blob not cached: passed on from the upstream, not stored."""
        context = self._route.mirror.upstream.blob(
            self._route.upstream_name, digest, f"bytes={offset}-"
        )
        blob = await context.__aenter__()
        return _Passed(blob.chunks, context)

    async def _present(self, digest: Digest) -> bool:
        try:
            await self._inner.stat(digest)
        except BlobUnknown:
            return False
        return True

    async def _fetch(self, digest: Digest) -> FileReader:
        key = fetch_id(self.name, str(digest))
        running = self._state.fetches.running(key)
        if running is not None:  # fetching here already: served from storage once done
            await asyncio.shield(running)
            return await self._inner.open(digest)
        tee = Tee()
        self._state.fetches.start(key, self._run(digest, key, tee))
        return tee

    async def _run(self, digest: Digest, key: str, tee: Tee) -> None:
        route = self._route
        timeout = route.mirror.config.cache_write_timeout.total_seconds()
        try:
            while not await self._present(digest):
                try:
                    async with self._uploads.claimed(key) as held:
                        if await self._present(digest):
                            break
                        async with route.mirror.upstream.blob(route.upstream_name, digest) as blob:
                            body = tee.pass_on(self._counted(blob.chunks))
                            work = self._uploads.store_fetched(held, key, digest, body)
                            await _within(work, timeout, tee)
                        self._state.expiry.fetched(self.name, digest)
                        tee.finish()
                        return
                except FillBusy:
                    await wait_until(lambda: self._present(digest))
            # Stored by another request meanwhile: the client reads it from storage.
            tee.then = lambda: self._inner.open(digest)
            tee.finish()
        except BaseException as error:
            self._state.count(route, "blob", "error")
            tee.finish(error if isinstance(error, RegistryError) else _cut_short(error))
            raise

    async def _counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        upstream = self._route.mirror.config.name
        fetched = self._state.fetched_bytes
        async for chunk in chunks:
            fetched[upstream] = fetched.get(upstream, 0) + len(chunk)
            yield chunk

    async def link(self, digest: Digest) -> None:
        raise _refused(self._route)

    async def unlink(self, digest: Digest) -> None:
        raise _refused(self._route)


async def _within(work: Awaitable[object], grace: float, tee: Tee) -> None:
    """Run ``work``; once the client left, for at most ``grace`` more seconds."""
    task = asyncio.ensure_future(work)
    while not task.done():
        done, _ = await asyncio.wait([task], timeout=1.0)
        if not done and tee.abandoned:
            try:
                await asyncio.wait_for(asyncio.shield(task), grace)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise Unavailable(message="the fetch outlived its client and its time") from None
    task.result()


def _cut_short(error: BaseException) -> Unavailable:
    log.warning("a fetch from the upstream failed: %s", error)
    return Unavailable(message="the fetch from the upstream registry failed")


class _Passed(FileReader):
    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        context: contextlib.AbstractAsyncContextManager[object],
    ) -> None:
        self._chunks = chunks
        self._context = context
        self._rest = b""

    async def read(self, size: int) -> bytes:
        if not self._rest:
            self._rest = await anext(self._chunks, b"")
        piece, self._rest = self._rest[:size], self._rest[size:]
        return piece

    async def close(self) -> None:
        await self._context.__aexit__(None, None, None)


@delegating
class ProxyManifests(Manifests):
    def __init__(
        self, inner: Manifests, uploads: Uploads, route: Route, state: ProxyState, tags: Tags
    ) -> None:
        vars(self).update(vars(inner))
        self._inner = inner
        self._uploads = uploads
        self._route = route
        self._state = state
        self._proxy_tags = tags

    async def get(self, digest: Digest) -> StoredManifest:
        try:
            stored = await self._inner.get(digest)
        except ManifestUnknown:
            self._state.count(self._route, "manifest", "miss")
            try:
                await self.fetch(digest)
            except RegistryError:
                self._state.count(self._route, "manifest", "error")
                raise
            stored = await self._inner.get(digest)
        else:
            self._state.count(self._route, "manifest", "hit")
        self._state.expiry.touched(self.name, digest)
        return stored

    async def resolve(self, reference: Tag | Digest) -> StoredManifest:
        if isinstance(reference, Tag):
            reference = await self._proxy_tags.get(reference)
        return await self.get(reference)

    async def fetch(self, digest: Digest) -> None:
        """Fetch and store the manifest ``digest`` unless it is stored by then."""
        key = fetch_id(self.name, str(digest))
        running = self._state.fetches.running(key)
        if running is None:
            running = self._state.fetches.start(key, self._run(digest, key))
        await asyncio.shield(running)

    async def _run(self, digest: Digest, key: str) -> None:
        while not await self._inner.exists(digest):
            try:
                async with self._uploads.claimed(key):
                    if await self._inner.exists(digest):
                        return
                    await self._store(digest)
                    return
            except FillBusy:
                await wait_until(lambda: self._inner.exists(digest))

    async def _store(self, digest: Digest) -> None:
        route = self._route
        fetched = await route.mirror.upstream.manifest(route.upstream_name, digest)
        if digest_of(fetched.body, digest.algorithm) != digest:
            raise Unavailable(
                {"digest": str(digest)}, message="the upstream sent a manifest of another digest"
            )
        await self.store.put(digest, fetched.body)
        await self.driver.put_content(
            paths.manifest_revision_link(self.name, digest), paths.link_content(digest)
        )
        with contextlib.suppress(RegistryError):
            parsed = parse_manifest(fetched.body, detect_media_type(fetched.body), digest.algorithm)
            if parsed.subject is not None:
                await self.referrers.add(parsed.subject.digest, parsed)
        self._state.expiry.fetched(self.name, digest)
        self.changed()

    async def put(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        raise _refused(self._route)

    async def delete(self, digest: Digest) -> None:
        raise _refused(self._route)


@delegating
class ProxyTags(Tags):
    def __init__(
        self, inner: Tags, manifests: ProxyManifests | None, route: Route, state: ProxyState
    ) -> None:
        vars(self).update(vars(inner))
        self._inner = inner
        self.manifests = manifests
        self._route = route
        self._state = state

    async def get(self, tag: Tag) -> Digest:
        local: Digest | None = None
        with contextlib.suppress(ManifestUnknown):
            local = await self._inner.get(tag)
        config = self._route.mirror.config
        checked = self._state.tag_checks.get((self.name.value, tag.value))
        if (
            local is not None
            and checked is not None
            and checked[0] == local
            and time.monotonic() - checked[1] < config.tag_check.total_seconds()
        ):
            return local
        upstream = self._route.mirror.upstream
        try:
            digest = await upstream.manifest_digest(self._route.upstream_name, tag)
        except (Unavailable, TooManyRequests):
            if local is not None:
                return local  # the upstream cannot say: what the cache holds is served
            raise
        if digest != local:
            assert self.manifests is not None
            await self.manifests.fetch(digest)
            await self._inner.tag(tag, digest)
        self._state.checked(self.name.value, tag.value, digest)
        return digest

    async def all(self) -> list[str]:
        try:
            return sorted(await self._route.mirror.upstream.tags(self._route.upstream_name))
        except (Unavailable, TooManyRequests):
            return await self._inner.all()

    async def tag(self, tag: Tag, digest: Digest, *, announce: bool = True) -> None:
        raise _refused(self._route)

    async def untag(self, tag: Tag, *, announce: bool = True) -> None:
        raise _refused(self._route)


@delegating
class RefusedUploads(Uploads):
    """A mirror takes no pushes."""

    def __init__(self, inner: Uploads, route: Route) -> None:
        vars(self).update(vars(inner))
        self._inner = inner
        self._route = route

    async def create(self) -> str:
        raise _refused(self._route)

    async def append(self, *args: object, **kwargs: object) -> int:
        raise _refused(self._route)

    async def complete(self, *args: object, **kwargs: object) -> BlobInfo:
        raise _refused(self._route)

    async def cancel(self, upload_id: str) -> None:
        raise _refused(self._route)


def decorate(repository: Repository, route: Route, state: ProxyState) -> None:
    """Make ``repository`` a mirror through ``route``."""
    uploads = repository.uploads  # the real write path, which fetched content takes
    tags = ProxyTags(repository.tags, None, route, state)
    manifests = ProxyManifests(repository.manifests, uploads, route, state, tags)
    tags.manifests = manifests
    repository.blobs = ProxyBlobs(repository.blobs, uploads, route, state)
    repository.manifests = manifests
    repository.tags = tags
    repository.uploads = RefusedUploads(uploads, route)
