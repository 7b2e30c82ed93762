"""Decorators around a repository's services that report what happened to an ``EventSink``.

Each decorator is a subclass of the service sharing the wrapped instance's state (the same
driver, caches and collaborators), overriding only the calls that make events, after they
succeed; calls between services inside the registry (a manifest delete untagging, an upload
linking its blob) go to the undecorated collaborators and make no events of their own. This is
Distribution's ``notifications.Listen``:

    push    a manifest stored (``Manifests.put``), a blob upload completed (``Uploads.complete``,
            ``Uploads.publish``)
    pull    a manifest fetched by GET (``Manifests.resolve``), a blob fetched by GET (its
            ``RepositoryBlobs.stat``, which the blob GET makes first)
    mount   a blob linked from another repository (``RepositoryBlobs.link`` on upload start)
    delete  a manifest (by digest), a tag, a blob unlinked

HEAD requests are checks, not pulls, and make no events. What kind of request is being served
comes from the request context (``wharf.observability.context``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from wharf.notifications.events import BLOB_MEDIA_TYPE, Target
from wharf.notifications.sink import EventSink
from wharf.observability.context import CURRENT
from wharf.reference import Digest, Tag
from wharf.registry.blobs import BlobInfo, RepositoryBlobs
from wharf.registry.decorating import delegating
from wharf.registry.manifest_parse import ParsedManifest
from wharf.registry.manifests import Manifests, StoredManifest
from wharf.registry.namespace import Repository
from wharf.registry.tags import Tags
from wharf.registry.uploads import Uploads

__all__ = ["notifying"]

#: Turns an API path (``/v2/...``) into the URL an event names.
URLBuilder = Callable[[str], str]


def _serving(method: str, route: str) -> bool:
    info = CURRENT.get()
    return info is not None and info.method == method and info.route == route


class _Events:
    """What every decorator of one repository shares."""

    __slots__ = ("name", "sink", "urls")

    def __init__(self, sink: EventSink, urls: URLBuilder, name: str) -> None:
        self.sink = sink
        self.urls = urls
        self.name = name

    def blob(self, action: str, digest: Digest, size: int, **extra: Any) -> None:
        url = self.urls(f"/v2/{self.name}/blobs/{digest}")
        target = Target(self.name, str(digest), BLOB_MEDIA_TYPE, size, url, **extra)
        self.sink.emit(action, target)

    def manifest(
        self,
        action: str,
        digest: Digest,
        media_type: str,
        size: int,
        tag: str = "",
        references: tuple[dict[str, Any], ...] = (),
    ) -> None:
        url = self.urls(f"/v2/{self.name}/manifests/{digest}")
        target = Target(self.name, str(digest), media_type, size, url, tag, references=references)
        self.sink.emit(action, target)

    def deleted(self, digest: Digest | None = None, tag: str = "") -> None:
        self.sink.emit("delete", Target(self.name, str(digest or ""), tag=tag))


@delegating
class _NotifyingManifests(Manifests):
    def __init__(self, inner: Manifests, events: _Events) -> None:
        vars(self).update(vars(inner))  # the same service, seen through the decorator
        self._inner = inner
        self._events = events

    async def put(
        self, body: bytes, content_type: str | None, reference: Tag | Digest, **options: Any
    ) -> ParsedManifest:
        manifest = await self._inner.put(body, content_type, reference, **options)
        references: tuple[dict[str, Any], ...] = ()
        if self._events.sink.include_references:
            references = tuple(
                {"mediaType": d.media_type, "digest": str(d.digest), "size": d.size}
                for d in manifest.references()
            )
        # One event per tag, as a client pushing the manifest under each tag in turn causes.
        tags = [reference.value] if isinstance(reference, Tag) else []
        tags += [tag.value for tag in options.get("tags", ()) if tag.value not in tags]
        for tag in tags or [""]:
            self._events.manifest(
                "push", manifest.digest, manifest.media_type, len(body), tag, references
            )
        return manifest

    async def resolve(self, reference: Tag | Digest) -> StoredManifest:
        stored = await self._inner.resolve(reference)
        if _serving("GET", "manifest"):
            tag = reference.value if isinstance(reference, Tag) else ""
            self._events.manifest("pull", stored.digest, stored.media_type, len(stored.body), tag)
        return stored

    async def delete(self, digest: Digest) -> None:
        await self._inner.delete(digest)
        self._events.deleted(digest)


@delegating
class _NotifyingTags(Tags):
    def __init__(self, inner: Tags, events: _Events) -> None:
        vars(self).update(vars(inner))
        self._inner = inner
        self._events = events

    async def untag(self, tag: Tag, *, announce: bool = True) -> None:
        await self._inner.untag(tag, announce=announce)
        self._events.deleted(tag=tag.value)


@delegating
class _NotifyingBlobs(RepositoryBlobs):
    def __init__(self, inner: RepositoryBlobs, events: _Events) -> None:
        vars(self).update(vars(inner))
        self._inner = inner
        self._events = events

    async def stat(self, digest: Digest) -> BlobInfo:
        info = await self._inner.stat(digest)
        if _serving("GET", "blob"):
            self._events.blob("pull", digest, info.size)
        return info

    async def link(self, digest: Digest) -> None:
        await self._inner.link(digest)
        request = CURRENT.get()
        if request is not None and request.route == "upload_start":
            size = (await self.store.stat(digest)).size
            source = request.query("from") or ""
            self._events.blob("mount", digest, size, from_repository=source)

    async def unlink(self, digest: Digest) -> None:
        await self._inner.unlink(digest)
        self._events.deleted(digest)


@delegating
class _NotifyingUploads(Uploads):
    def __init__(self, inner: Uploads, events: _Events) -> None:
        vars(self).update(vars(inner))
        self._inner = inner
        self._events = events

    async def complete(
        self,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes] | None = None,
        *,
        start: int,
    ) -> BlobInfo:
        info = await self._inner.complete(upload_id, digest, body, start=start)
        self._events.blob("push", info.digest, info.size)
        return info

    async def publish(self, upload_id: str, *, start: int) -> BlobInfo:
        info = await self._inner.publish(upload_id, start=start)
        self._events.blob("push", info.digest, info.size)
        return info


def notifying(sink: EventSink, urls: URLBuilder) -> Callable[[Repository], None]:
    """A repository middleware: decorates each new repository's services to emit events."""

    def decorate(repository: Repository) -> None:
        events = _Events(sink, urls, repository.name.value)
        repository.manifests = _NotifyingManifests(repository.manifests, events)
        repository.tags = _NotifyingTags(repository.tags, events)
        repository.blobs = _NotifyingBlobs(repository.blobs, events)
        repository.uploads = _NotifyingUploads(repository.uploads, events)

    return decorate
