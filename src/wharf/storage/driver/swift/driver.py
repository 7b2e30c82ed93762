"""The ``swift`` storage driver: OpenStack Swift's native API, laid out as Distribution 2.x's.

Names follow ``layout``; files written through a writer are Dynamic Large Objects
(``writer``), files written whole are plain objects. Directories are name prefixes: ``list``
asks with a ``/`` delimiter, ``walk`` lists the whole prefix and asks each zero-byte object
(the listing shows a DLO manifest's own size) for its size. ``move`` of a DLO writes a
manifest naming the same segments at the destination and deletes the source manifest; of a
plain object, a server-side copy and a delete. ``delete`` removes the objects below a path and
the segments of every manifest among them, as Distribution does.

Leases: Swift creates an object only if absent (``If-None-Match: *``), but not atomically
(two concurrent creates both succeed), so leases are this machine's lock files
(``local_leases``) and ``exclusive_leases`` is False: uploads verify what storage holds, and
a writer's commit checks the segments it knows.

Temp URLs (redirects): made when the cluster offers the ``tempurl`` middleware (or
``tempurlmethods`` says which methods) and a key is known: ``secretkey``, set on the
container (Swift 2.3 and later, or ``tempurlcontainerkey``) or account when it differs, or
else a key already set there. Unlike Distribution, no random key is made up when none is
configured: each instance would replace the others' and break their URLs.

The container is created on first use when missing, as Distribution does.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from wharf.storage.driver.base import (
    FileInfo,
    FileReader,
    FileWriter,
    Lease,
    PathNotFound,
    ResumeState,
    StorageDriver,
)
from wharf.storage.driver.listed_walk import walk_listed
from wharf.storage.driver.local_leases import LocalLeases
from wharf.storage.driver.swift.client import RetryPolicy, SwiftClient
from wharf.storage.driver.swift.layout import Layout
from wharf.storage.driver.swift.objects import PARALLEL, Listed, Objects
from wharf.storage.driver.swift.params import SwiftParameters, parse_parameters
from wharf.storage.driver.swift.reader import open_reader
from wharf.storage.driver.swift.writer import (
    Stored,
    SwiftWriter,
    load_stored,
    manifest_segments,
)

__all__ = ["REDIRECT_EXPIRY", "SwiftDriver"]

#: Lifetime of a temp URL, in seconds (Distribution's 20 minutes).
REDIRECT_EXPIRY = 20 * 60


class SwiftDriver(StorageDriver):
    name = "swift"
    exclusive_leases = False

    def __init__(
        self,
        params: SwiftParameters,
        *,
        retry: RetryPolicy | None = None,
        page_size: int = 10000,
    ) -> None:
        """The keyword knobs exist for tests and benchmarks; configuration sets ``params``."""
        self.params = params
        self.layout = Layout(params.prefix)
        self.client = SwiftClient(params, retry=retry)
        self.objects = Objects(self.client, params.container, page_size=page_size)
        self._leases = LocalLeases(f"swift:{params.authurl}:{params.container}:{params.prefix}")
        self._ready: asyncio.Future[None] | None = None
        self._tempurl_key = ""
        self._tempurl_methods: frozenset[str] = frozenset()

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> SwiftDriver:
        """The driver for a ``storage: swift:`` section; ValueError naming a bad parameter."""
        return cls(parse_parameters(parameters))

    # -- setup ------------------------------------------------------------------------------

    async def ready(self) -> None:
        """Authenticate, create the container when missing, learn the temp URL settings;
        once (again after a failure)."""
        if self._ready is None or (self._ready.done() and self._ready.exception() is not None):
            self._ready = asyncio.ensure_future(self._setup())
        await asyncio.shield(self._ready)

    async def _setup(self) -> None:
        await self.client.authenticate()
        if await self.objects.container_metadata() is None:
            await self.objects.create_container()
        info = await self.client.info()
        bulk = info.get("bulk_delete")
        if isinstance(bulk, dict):
            self.objects.bulk_deletes = min(int(bulk.get("max_deletes_per_request", 0)), 1000)
        methods = self.params.tempurlmethods
        if methods is None:
            tempurl = info.get("tempurl")
            found = tempurl.get("methods", []) if isinstance(tempurl, dict) else []
            methods = tuple(str(m) for m in found)
        self._tempurl_methods = frozenset(methods)
        if self._tempurl_methods:
            version = str(info.get("swift", {}).get("version", ""))
            on_container = self.params.tempurlcontainerkey or _at_least(version, (2, 3))
            self._tempurl_key = await self._temp_url_key(on_container)

    async def _temp_url_key(self, on_container: bool) -> str:
        if on_container:
            response = await self.client.request("HEAD", self.params.container)
            meta, target = "X-Container-Meta-Temp-Url-Key", self.params.container
        else:
            response = await self.client.request("HEAD", "")
            meta, target = "X-Account-Meta-Temp-Url-Key", ""
        current = str(response.headers.get(meta, ""))
        wanted = self.params.secretkey
        if wanted and wanted != current:
            await self.client.request("POST", target, headers={meta: wanted})
            return wanted
        return current

    # -- files ------------------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        await self.ready()
        content = await self.objects.get(self.layout.name(path), path)
        if content is None:
            raise PathNotFound(path)
        return content

    async def put_content(self, path: str, content: bytes) -> None:
        await self.ready()
        await self.objects.put(self.layout.name(path), bytes(content), path=path)

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        await self.ready()
        return await open_reader(self.objects, self.layout.name(path), path, offset)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        await self.ready()
        name = self.layout.name(path)
        stored = None
        if append:
            stored = await load_stored(self.objects, self.layout, name, path)
            if stored is None:
                raise PathNotFound(path)
        return SwiftWriter(self.objects, self.layout, path, name, stored, self.params.chunksize)

    async def resume_writer(self, path: str, state: ResumeState | None) -> FileWriter:
        if not isinstance(state, Stored):
            return await super().resume_writer(path, state)
        await self.ready()
        name = self.layout.name(path)
        return SwiftWriter(self.objects, self.layout, path, name, state, self.params.chunksize)

    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        await self.ready()
        name = self.layout.name(path)

        async def exists() -> bool:
            return await self.objects.head(name, path) is not None

        return await self._leases.lease(path, exists)

    async def stat(self, path: str) -> FileInfo:
        if path == "/":
            return FileInfo(path, 0, None, True)
        await self.ready()
        head = await self.objects.head(self.layout.name(path), path)
        if head is not None:
            return FileInfo(path, head.size, head.modified, False)
        async for _ in self.objects.list_pages(self.layout.directory(path), limit=1):
            return FileInfo(path, 0, None, True)
        raise PathNotFound(path)

    async def move(self, source: str, destination: str) -> None:
        await self.ready()
        name = self.layout.name(source)
        target = self.layout.name(destination)
        head, replaced = await asyncio.gather(
            self.objects.head(name, source), self.objects.head(target, destination)
        )
        if head is None:
            raise PathNotFound(source)
        if source == destination:
            return
        if head.manifest:
            segments = manifest_segments(self.objects, head.manifest, source)
            await self.objects.put(target, b"", manifest=segments, path=destination)
        else:
            segments = ""
            if not await self.objects.copy(name, target, destination):
                raise PathNotFound(source)
        await self.objects.delete(name, source)
        if replaced is not None and replaced.manifest:
            old = manifest_segments(self.objects, replaced.manifest, destination)
            if old != segments:  # the segments of the file replaced are no one's now
                await self._delete_segments([old])

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if method not in ("GET", "HEAD"):
            return None
        await self.ready()
        if not self._tempurl_key or "GET" not in self._tempurl_methods:
            return None
        # A signature for GET serves HEAD too.
        expires = int(time.time()) + REDIRECT_EXPIRY
        object_path = f"{self.client.account_path}/{self.params.container}/{self.layout.name(path)}"
        body = f"GET\n{expires}\n{object_path}".encode()
        signature = hmac.new(self._tempurl_key.encode(), body, hashlib.sha256).hexdigest()
        if self.params.accesskey:
            signature = f"{self.params.tenantid}:{self.params.accesskey}:{signature}"
        url = self.client.object_url(self.params.container, self.layout.name(path))
        return f"{url}?temp_url_sig={quote(signature, safe='')}&temp_url_expires={expires}"

    # -- directories ------------------------------------------------------------------------

    async def list(self, path: str) -> list[str]:
        await self.ready()
        prefix = self.layout.files_base + "/" if path == "/" else self.layout.directory(path)
        children: builtins.list[str] = []
        async for page in self.objects.list_pages(prefix, delimiter="/"):
            children += [child for item in page if (child := self.layout.path(item.name))]
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(set(children))

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return walk_listed(path, self.walk_files(path))

    async def walk_files(
        self, path: str, skip: Callable[[str], bool] | None = None
    ) -> AsyncIterator[builtins.list[FileInfo]]:
        await self.ready()
        prefix = self.layout.files_base + "/" if path == "/" else self.layout.directory(path)
        async for page in self.objects.list_pages(prefix):
            sizes = await self._sizes(page)
            files = [
                FileInfo(
                    file,
                    sizes.get(item.name, item.size),
                    item.modified,
                    False,
                    item.etag.strip('"') or None,
                )
                for item in page
                if not item.name.endswith("/") and (file := self.layout.path(item.name)) is not None
            ]
            if files:
                yield files

    async def _sizes(self, page: Sequence[Listed]) -> dict[str, int]:
        """The sizes of the DLOs among ``page``, whose listing shows 0."""
        limit = asyncio.Semaphore(PARALLEL)
        sizes: dict[str, int] = {}

        async def one(item: Listed) -> None:
            async with limit:
                head = await self.objects.head(item.name)
                if head is not None:
                    sizes[item.name] = head.size

        await asyncio.gather(*(one(item) for item in page if item.may_be_manifest))
        return sizes

    async def _manifests(self, items: Sequence[Listed]) -> builtins.list[str]:
        """The segments paths of the DLO manifests among ``items``."""
        limit = asyncio.Semaphore(PARALLEL)
        found: builtins.list[str] = []

        async def one(item: Listed) -> None:
            async with limit:
                head = await self.objects.head(item.name)
                if head is not None and head.manifest:
                    path = self.layout.path(item.name) or item.name
                    found.append(manifest_segments(self.objects, head.manifest, path))

        await asyncio.gather(*(one(item) for item in items if item.may_be_manifest))
        return found

    async def delete(self, path: str) -> None:
        await self.ready()
        name = self.layout.name(path)
        # Both at once: a path names a file or a directory, and either answer alone does not
        # tell which.
        items, head = await asyncio.gather(
            self.objects.list_all(self.layout.directory(path)), self.objects.head(name, path)
        )
        if head is None and not items:
            raise PathNotFound(path)
        segments = await self._manifests(items)
        if head is not None:
            items.append(Listed(name, head.size, None, head.etag))
            if head.manifest:
                segments.append(manifest_segments(self.objects, head.manifest, path))
        # The files first (nobody reads a file whose segments are going), then their bytes.
        await self.objects.delete_all([item.name for item in items])
        await self._delete_segments(segments)

    async def _delete_segments(self, segments_paths: Sequence[str]) -> None:
        for segments_path in segments_paths:
            found = await self.objects.list_all(segments_path + "/")
            await self.objects.delete_all([item.name for item in found])

    # -- maintenance ------------------------------------------------------------------------

    async def purge_uncommitted(self, before: datetime, *, dry_run: bool = False) -> Sequence[str]:
        """Delete orphaned segments: those of no manifest, last written before ``before``
        (a writer that died before its first manifest, a file replaced by ``put_content``,
        a manifest Distribution deleted alone). Finding them asks every zero-byte file
        whether it is a manifest, so this costs a HEAD per blob when there are any."""
        await self.ready()
        groups: dict[str, datetime | None] = {}
        for item in await self.objects.list_all(self.layout.segments_base + "/"):
            group = self.layout.segments_group(item.name)
            if group is None:
                continue
            newest = groups.get(group)
            if group not in groups or (
                item.modified is not None and (newest is None or item.modified > newest)
            ):
                groups[group] = item.modified
        stale = {g for g, modified in groups.items() if modified is not None and modified < before}
        if not stale:
            return []
        referenced: set[str] = set()
        async for page in self.objects.list_pages(self.layout.files_base + "/"):
            referenced.update(await self._manifests(page))
        orphans = sorted(stale - referenced)
        if not dry_run:
            await self._delete_segments(orphans)
        return [f"segments of no file: {group}" for group in orphans]

    async def close(self) -> None:
        await self.client.close()


def _at_least(version: str, wanted: tuple[int, ...]) -> bool:
    parts = []
    for part in version.split(".")[: len(wanted)]:
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) >= wanted
