"""The Azure operations the driver is made of, each as one awaitable: properties, ranged
fetches, puts, conditional creates, paginated listings, staged blocks, and copies.

Paths, lease blobs and block naming are the business of ``layout``, ``lease`` and ``writer``;
this module deals in blob names only. Listing pages hold ``page_size`` names (Azure's
maximum, 5000, unless a test asks for fewer).

The calls that are not idempotent are never simply repeated: after a transient failure
``create`` reads the blob to see whether the lost answer was its own success, and a copy is
started once and then polled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.storage.blob import BlobBlock, BlobPrefix, BlobType

from wharf.storage.driver.azure.client import (
    AzureClient,
    AzureError,
    error_code,
    error_status,
    is_not_found,
    is_retryable,
)
from wharf.storage.driver.base import DriverError

__all__ = ["Blobs", "Fetched", "ObjectInfo"]

#: Lifetime of the SAS that signs a copy's source.
_COPY_SAS = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    name: str
    size: int
    modified: datetime | None
    etag: str = ""
    #: "BlockBlob", "AppendBlob" or "PageBlob".
    kind: str = "BlockBlob"
    #: Hex Content-MD5, where the service keeps one (a blob put in one request).
    md5: str = ""


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    total: int  # the blob's size
    etag: str


def _kind(value: Any) -> str:
    return str(getattr(value, "value", value) or "BlockBlob")


class Blobs:
    """One container's blob operations."""

    def __init__(self, client: AzureClient, *, page_size: int = 5000) -> None:
        self.client = client
        self.container = client.container
        self.page_size = page_size

    def blob(self, name: str) -> Any:
        return self.container.get_blob_client(name)

    # -- blobs ------------------------------------------------------------------------------

    async def head(self, name: str) -> ObjectInfo:
        props = await self.client.call(
            "GetBlobProperties", lambda: self.blob(name).get_blob_properties()
        )
        return ObjectInfo(
            name, props.size, props.last_modified, props.etag or "", _kind(props.blob_type)
        )

    async def get(self, name: str) -> bytes:
        return await self.client.call(
            "GetBlob", lambda: self.blob(name).download_blob(max_concurrency=1).readall()
        )

    async def fetch(self, name: str, start: int, length: int, *, etag: str = "") -> Fetched:
        """``length`` bytes from ``start`` (fewer at the end); with ``etag``, only from that
        version of the blob (412 otherwise). The body is read in the worker thread, so a
        connection dropped mid-body is retried like any other failure."""
        conditions: dict[str, Any] = {}
        if etag:
            conditions = {"etag": etag, "match_condition": MatchConditions.IfNotModified}

        def fetch() -> Fetched:
            stream = self.blob(name).download_blob(
                offset=start, length=length, max_concurrency=1, **conditions
            )
            data = stream.readall()
            # The SDK sets ``size`` to the range's; the range header has the blob's.
            total = str(stream.properties.content_range or "").rpartition("/")[2]
            size = int(total) if total.isdigit() else stream.properties.size
            return Fetched(data, size, stream.properties.etag or "")

        return await self.client.call("GetBlob", fetch)

    async def put(self, name: str, data: bytes, *, metadata: dict[str, str] | None = None) -> str:
        """Store ``data`` at ``name`` as a block blob in one request; its ETag."""

        def put() -> str:
            result = self.blob(name).upload_blob(
                data, overwrite=True, blob_type=BlobType.BLOCKBLOB, metadata=metadata,
                max_concurrency=1,
            )  # fmt: skip
            return str(result.get("etag", ""))

        return await self.client.call("PutBlob", put)

    async def create(self, name: str, data: bytes, metadata: dict[str, str]) -> bool:
        """Create ``name`` unless it exists; whether this call created it. A retried create
        whose first answer was lost finds its own metadata there."""

        def create() -> None:
            self.blob(name).upload_blob(data, overwrite=False, metadata=metadata, max_concurrency=1)

        for attempt in range(self.client.retry.attempts):
            try:
                await self.client.call("PutBlob", create, idempotent=False)
                return True
            except AzureError as exc:
                if error_status(exc) in (409, 412):
                    if attempt == 0:
                        return False
                    try:
                        props = await self.client.call(
                            "GetBlobProperties", lambda: self.blob(name).get_blob_properties()
                        )
                    except AzureError:
                        return False
                    return dict(props.metadata or {}) == metadata
                if not is_retryable(exc) or attempt + 1 >= self.client.retry.attempts:
                    raise
                await asyncio.sleep(self.client.retry.delay(attempt))
        return False  # pragma: no cover - the loop returns or raises

    async def delete(self, name: str, *, lease: str | None = None) -> bool:
        """Delete blob ``name``; whether it was there (a retry that finds it gone counts)."""
        try:
            await self.client.call("DeleteBlob", lambda: self.blob(name).delete_blob(lease=lease))
        except AzureError as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    # -- listings ---------------------------------------------------------------------------

    async def list_pages(
        self, prefix: str, *, delimiter: str = "", uncommitted: bool = False
    ) -> AsyncIterator[tuple[list[ObjectInfo], list[str]]]:
        """Pages of (blobs, common prefixes) under ``prefix``, in name order; with
        ``uncommitted``, blobs that have staged blocks only are listed too."""
        include = ["uncommittedblobs"] if uncommitted else None
        token: str | None = None
        while True:

            def page(token: str | None = token) -> tuple[list[Any], str | None]:
                paged: Any
                if delimiter:
                    paged = self.container.walk_blobs(
                        name_starts_with=prefix, delimiter=delimiter, include=include,
                        results_per_page=self.page_size,
                    )  # fmt: skip
                else:
                    paged = self.container.list_blobs(
                        name_starts_with=prefix, include=include, results_per_page=self.page_size
                    )
                pages = paged.by_page(continuation_token=token)
                items = list(next(pages))
                return items, pages.continuation_token

            items, token = await self.client.call("ListBlobs", page)
            blobs = [
                ObjectInfo(
                    item.name,
                    item.size or 0,
                    item.last_modified,
                    item.etag or "",
                    _kind(item.blob_type),
                    _hex_md5(item),
                )
                for item in items
                if not isinstance(item, BlobPrefix)
            ]
            prefixes = [item.name for item in items if isinstance(item, BlobPrefix)]
            yield blobs, prefixes
            if not token:
                return

    async def list_all(self, prefix: str, *, uncommitted: bool = False) -> list[ObjectInfo]:
        return [
            blob async for page, _ in self.list_pages(prefix, uncommitted=uncommitted)
            for blob in page
        ]  # fmt: skip

    # -- staged blocks ----------------------------------------------------------------------

    async def stage(self, name: str, block: str, data: bytes) -> None:
        # Idempotent: staging a block id again replaces that block.
        await self.client.call(
            "PutBlock", lambda: self.blob(name).stage_block(block, data, length=len(data))
        )

    async def staged(self, name: str) -> list[tuple[str, int]]:
        """The uncommitted blocks of ``name``, as (id, size); [] when there is no blob."""

        def listed() -> list[tuple[str, int]]:
            _, uncommitted = self.blob(name).get_block_list("uncommitted")
            return [(block.id, int(block.size)) for block in uncommitted]

        try:
            return await self.client.call("GetBlockList", listed)
        except AzureError as exc:
            # An append blob (Distribution's uploads) has no blocks to list.
            if is_not_found(exc) or error_code(exc) == "InvalidBlobType":
                return []
            raise

    async def commit(self, name: str, blocks: Sequence[str], **conditions: Any) -> str:
        """Make ``blocks`` the content of ``name``, discarding every other staged block; its
        ETag. Repeating a commit of the same list gives the same content."""

        def commit() -> str:
            result = self.blob(name).commit_block_list(
                [BlobBlock(block_id=block) for block in blocks], **conditions
            )
            return str(result.get("etag", ""))

        return await self.client.call("PutBlockList", commit, idempotent=not conditions)

    async def discard_staged(self, name: str) -> None:
        """Drop the staged blocks of a blob that holds nothing committed: committing an empty
        list (only if no blob is there) discards them, and the empty blob goes. Where a
        committed blob is there, its staged blocks stay until Azure drops them (7 days)."""
        try:
            etag = await self.commit(name, [], if_none_match="*")
        except AzureError as exc:
            if error_status(exc) in (409, 412) or error_code(exc) == "BlobAlreadyExists":
                return
            raise
        try:
            await self.client.call(
                "DeleteBlob",
                lambda: self.blob(name).delete_blob(
                    etag=etag, match_condition=MatchConditions.IfNotModified
                ),
            )
        except AzureError as exc:
            if not (is_not_found(exc) or error_status(exc) == 412):
                raise

    # -- copies -----------------------------------------------------------------------------

    async def copy(self, source: str, destination: str) -> None:
        """Server-side copy, polled while Azure reports it pending (``copy_status_poll_*``)."""
        params = self.client.params
        url = self.blob(source).url
        if params.credentials_type != "shared_key":
            # Entra tokens do not reach the source of a copy: sign it (as Distribution does).
            url = await self.client.call("Sign", lambda: self.client.sign(source, _COPY_SAS))
        target = self.blob(destination)
        started = await self.client.call(
            "CopyBlob", lambda: target.start_copy_from_url(url), idempotent=False
        )
        status, copy_id = str(started.get("copy_status", "")), started.get("copy_id")
        attempt = 1
        while status == "pending":
            if params.copy_status_poll_max_retry == -1 or attempt >= (
                params.copy_status_poll_max_retry
            ):
                await self.client.call("AbortCopyBlob", lambda: target.abort_copy(copy_id))
                raise DriverError(f"copy of {source} still pending after {attempt} polls: aborted")
            await asyncio.sleep(params.copy_status_poll_delay * attempt)
            props = await self.client.call("GetBlobProperties", target.get_blob_properties)
            status = str(getattr(props.copy, "status", "") or "")
            attempt += 1
        if status not in ("success", "None", ""):
            raise DriverError(f"copy of {source} to {destination} ended {status}")


def _hex_md5(item: Any) -> str:
    settings = getattr(item, "content_settings", None)
    md5 = getattr(settings, "content_md5", None)
    return bytes(md5).hex() if md5 else ""
