"""The Swift operations the driver uses, on one container: typed answers, 404 as None."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx

from wharf.storage.driver.swift.client import GrowingBody, SwiftClient, SwiftError

__all__ = ["Listed", "ObjectHead", "Objects"]

CONTENT_TYPE = "application/octet-stream"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
#: Requests in flight when many objects are deleted or stated.
PARALLEL = 16


@dataclass(frozen=True, slots=True)
class ObjectHead:
    size: int
    modified: datetime | None
    etag: str
    #: ``X-Object-Manifest``: ``<container>/<segments path>`` of a DLO, "" otherwise.
    manifest: str


@dataclass(frozen=True, slots=True)
class Listed:
    name: str
    size: int
    modified: datetime | None
    etag: str
    #: A ``subdir`` entry of a delimited listing.
    is_dir: bool = False

    @property
    def may_be_manifest(self) -> bool:
        # Listings show a DLO manifest's own size (0) and hash (that of no bytes).
        return not self.is_dir and self.size == 0 and self.etag == EMPTY_MD5


def _timestamp(headers: httpx.Headers) -> datetime | None:
    stamp = headers.get("X-Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), UTC)
        except ValueError:
            pass
    modified = headers.get("Last-Modified")
    if modified:
        try:
            return parsedate_to_datetime(modified)
        except (TypeError, ValueError):
            return None
    return None


def _listed_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None


class Objects:
    def __init__(self, client: SwiftClient, container: str, *, page_size: int = 10000) -> None:
        self.client = client
        self.container = container
        self.page_size = page_size
        #: Names per bulk delete request, where the cluster has the ``bulk`` middleware
        #: (its ``/info``); 0: one DELETE per object.
        self.bulk_deletes = 0

    async def head(self, name: str, path: str = "") -> ObjectHead | None:
        response = await self.client.request("HEAD", self.container, name, ok=(404,), path=path)
        if response.status_code == 404:
            return None
        headers = response.headers
        return ObjectHead(
            int(headers.get("Content-Length", "0")),
            _timestamp(headers),
            headers.get("Etag", "").strip('"'),
            headers.get("X-Object-Manifest", ""),
        )

    async def get(self, name: str, path: str = "") -> bytes | None:
        response = await self.client.request("GET", self.container, name, ok=(404,), path=path)
        return None if response.status_code == 404 else response.content

    async def put(
        self,
        name: str,
        content: bytes | tuple[bytes, ...] | GrowingBody,
        *,
        manifest: str | None = None,
        if_none_match: bool = False,
        path: str = "",
    ) -> str:
        """Store ``content`` at ``name``; its ETag. ``manifest``: make it a DLO manifest
        whose segments are the objects under that segments path."""
        headers = {"Content-Type": CONTENT_TYPE}
        if manifest is not None:
            headers["X-Object-Manifest"] = f"{quote(self.container, safe='')}/{quote(manifest)}"
        if if_none_match:
            headers["If-None-Match"] = "*"
        response = await self.client.request(
            "PUT", self.container, name, headers=headers, content=content, path=path
        )
        return str(response.headers.get("Etag", "")).strip('"')

    async def copy(self, source: str, destination: str, path: str = "") -> bool:
        """Server-side copy; False when the source is gone."""
        response = await self.client.request(
            "PUT",
            self.container,
            destination,
            headers={
                "X-Copy-From": f"/{quote(self.container, safe='')}/{quote(source)}",
                "Content-Length": "0",
            },
            content=b"",
            ok=(404,),
            path=path,
        )
        return response.status_code != 404

    async def delete(self, name: str, path: str = "") -> bool:
        """Whether there was an object to delete."""
        response = await self.client.request("DELETE", self.container, name, ok=(404,), path=path)
        return response.status_code != 404

    async def delete_all(self, names: Sequence[str]) -> None:
        """Delete every object of ``names`` (those already gone included)."""
        if self.bulk_deletes and len(names) > 1:
            for start in range(0, len(names), self.bulk_deletes):
                await self._bulk_delete(names[start : start + self.bulk_deletes])
            return
        limit = asyncio.Semaphore(PARALLEL)

        async def one(name: str) -> None:
            async with limit:
                await self.delete(name)

        await asyncio.gather(*(one(name) for name in names))

    async def _bulk_delete(self, names: Sequence[str]) -> None:
        """One ``bulk-delete`` request; sent again on failure, as deleting twice is harmless."""
        body = "".join(f"/{quote(self.container, safe='')}/{quote(name)}\n" for name in names)
        response = await self.client.request(
            "POST",
            "",
            params={"bulk-delete": "true"},
            headers={"Content-Type": "text/plain", "Accept": "application/json"},
            content=body.encode(),
            idempotent=True,
        )
        try:
            result = response.json()
        except ValueError as exc:
            raise SwiftError("bulk delete: the answer is not JSON") from exc
        status = str(result.get("Response Status", ""))
        errors = [e for e in result.get("Errors", []) if "404" not in str(e)]
        if errors or not (status.startswith("2") or status.startswith("404")):
            raise SwiftError(f"bulk delete of {len(names)} objects: {status} {errors[:3]}")

    async def list_pages(
        self, prefix: str, *, delimiter: str = "", limit: int | None = None
    ) -> AsyncIterator[list[Listed]]:
        """Pages of the container listing of ``prefix``, in name order."""
        marker = ""
        page = min(limit or self.page_size, self.page_size)
        while True:
            params = {"format": "json", "prefix": prefix, "limit": str(page)}
            if delimiter:
                params["delimiter"] = delimiter
            if marker:
                params["marker"] = marker
            response = await self.client.request("GET", self.container, params=params)
            try:
                entries = response.json() if response.content else []
            except ValueError as exc:
                raise SwiftError(f"listing {prefix!r}: not JSON") from exc
            listed = [
                Listed(e["subdir"], 0, None, "", True)
                if "subdir" in e
                else Listed(
                    e["name"], int(e.get("bytes", 0)), _listed_time(e.get("last_modified")),
                    str(e.get("hash", "")),
                )
                for e in entries
            ]  # fmt: skip
            if listed:
                yield listed
            if len(entries) < page or limit is not None:
                return
            marker = listed[-1].name

    async def list_all(self, prefix: str) -> list[Listed]:
        found: list[Listed] = []
        async for page in self.list_pages(prefix):
            found += page
        return found

    async def container_metadata(self) -> httpx.Headers | None:
        response = await self.client.request("HEAD", self.container, ok=(404,))
        return None if response.status_code == 404 else response.headers

    async def create_container(self) -> None:
        await self.client.request("PUT", self.container)
