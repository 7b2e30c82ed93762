"""The GCS object operations the driver is made of, on the JSON API."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from wharf.storage.driver.gcs.client import GCSClient, GCSError, quote_name

__all__ = ["UPLOAD_SESSION_TYPE", "ObjectInfo", "Objects"]

_FIELDS = "name,size,updated,generation,metadata,contentType,md5Hash"
_BOUNDARY = "wharf-7b1f0c4e9d2a"
_MEDIA = "application/octet-stream"
#: The content type of the object where Distribution keeps an upload in progress (its
#: resumable session's URI and the bytes not yet sent to it): no file, to wharf as to it.
UPLOAD_SESSION_TYPE = "application/x-docker-upload-session"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    name: str
    size: int
    modified: datetime | None
    generation: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str = ""
    #: Hex MD5 of the content; empty for composite objects, which have none.
    md5: str = ""

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> ObjectInfo:
        updated = item.get("updated")
        return cls(
            name=str(item["name"]),
            size=int(item.get("size") or 0),
            modified=datetime.fromisoformat(updated.replace("Z", "+00:00")) if updated else None,
            generation=int(item.get("generation") or 0),
            metadata=dict(item.get("metadata") or {}),
            content_type=str(item.get("contentType") or ""),
            md5=_hex_md5(item.get("md5Hash")),
        )

    @property
    def is_file(self) -> bool:
        return self.content_type != UPLOAD_SESSION_TYPE


def _hex_md5(encoded: Any) -> str:
    try:
        return base64.b64decode(encoded, validate=True).hex() if encoded else ""
    except (TypeError, ValueError):
        return ""


def server_time(response: httpx.Response) -> datetime | None:
    """The storage's clock, from the Date of its answer."""
    date = response.headers.get("date")
    try:
        return parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None


class Objects:
    """One bucket's objects."""

    def __init__(self, client: GCSClient, *, page_size: int = 1000) -> None:
        self.client = client
        self.page_size = page_size

    async def get(self, name: str) -> bytes:
        response = await self.client.request(
            "GetObject", "GET", self.client.object_path(name), params={"alt": "media"}
        )
        if response.headers.get("content-type") == UPLOAD_SESSION_TYPE:
            raise GCSError("GetObject", 404, "an upload in progress of Distribution's")
        return response.content

    async def put(self, name: str, data: bytes) -> ObjectInfo:
        """Replace object ``name``; safe to repeat, so retried."""
        if not data:
            # As a multipart upload: gcp-storage-emulator fails an empty media upload.
            response = await self._multipart(name, data, {}, None, idempotent=True)
            return ObjectInfo.parse(response.json())
        response = await self.client.request(
            "InsertObject", "POST", self.client.upload_path,
            params={"uploadType": "media", "name": name}, content=data,
            headers={"Content-Type": _MEDIA},
        )  # fmt: skip
        return ObjectInfo.parse(response.json())

    async def create(
        self, name: str, data: bytes, metadata: Mapping[str, str], *, generation: int
    ) -> tuple[ObjectInfo, datetime | None]:
        """Write ``name`` only if its generation is ``generation`` (0: only if absent):
        GCSError 412 otherwise. Never retried: a lost answer's retry would find its own
        write and answer 412."""
        response = await self._multipart(name, data, metadata, generation, idempotent=False)
        return ObjectInfo.parse(response.json()), server_time(response)

    async def _multipart(
        self,
        name: str,
        data: bytes,
        metadata: Mapping[str, str],
        generation: int | None,
        *,
        idempotent: bool,
    ) -> httpx.Response:
        """A multipart upload: the object's metadata and its bytes in one request, the only
        kind of upload fake-gcs-server holds to ``ifGenerationMatch``."""
        head = json.dumps({"name": name, "metadata": dict(metadata), "contentType": _MEDIA})
        body = (
            (
                f"--{_BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{head}\r\n"
                f"--{_BOUNDARY}\r\nContent-Type: {_MEDIA}\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{_BOUNDARY}--\r\n".encode()
        )
        params = {"uploadType": "multipart"}
        if generation is not None:
            params["ifGenerationMatch"] = str(generation)
        return await self.client.request(
            "InsertObject", "POST", self.client.upload_path, params=params, content=body,
            headers={"Content-Type": f"multipart/related; boundary={_BOUNDARY}"},
            idempotent=idempotent,
        )  # fmt: skip

    async def info(self, name: str) -> tuple[ObjectInfo, datetime | None]:
        """The object's metadata, and the storage's clock when it answered."""
        response = await self.client.request(
            "GetObjectMetadata", "GET", self.client.object_path(name), params={"fields": _FIELDS}
        )
        return ObjectInfo.parse(response.json()), server_time(response)

    async def head(self, name: str) -> ObjectInfo:
        """The metadata of a file: GCSError 404 for Distribution's upload in progress."""
        info = (await self.info(name))[0]
        if not info.is_file:
            raise GCSError("GetObjectMetadata", 404, "an upload in progress of Distribution's")
        return info

    async def exists(self, name: str) -> bool:
        try:
            await self.head(name)
        except GCSError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def list_pages(
        self, prefix: str, delimiter: str = "", *, glob: str = ""
    ) -> AsyncIterator[tuple[list[ObjectInfo], list[str]]]:
        """Objects whose name starts with ``prefix``, a page at a time, with the common
        prefixes up to ``delimiter`` when given; only those matching ``glob`` where the
        store filters by it (GCS's ``matchGlob``: callers still check each name)."""
        params = {
            "prefix": prefix,
            "maxResults": str(self.page_size),
            "fields": f"items({_FIELDS}),prefixes,nextPageToken",
        }
        if delimiter:
            params["delimiter"] = delimiter
        if glob:
            params["matchGlob"] = glob
        while True:
            response = await self.client.request(
                "ListObjects", "GET", self.client.bucket_path, params=params
            )
            body = response.json()
            items = [ObjectInfo.parse(item) for item in body.get("items") or []]
            yield items, [str(p) for p in body.get("prefixes") or []]
            token = body.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = str(token)

    async def list_all(self, prefix: str, *, glob: str = "") -> list[ObjectInfo]:
        return [info async for page, _ in self.list_pages(prefix, glob=glob) for info in page]

    async def delete(self, name: str) -> bool:
        """Delete ``name``; False when it was not there."""
        try:
            await self.client.request("DeleteObject", "DELETE", self.client.object_path(name))
        except GCSError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def compose(self, name: str, sources: Sequence[ObjectInfo]) -> ObjectInfo:
        """Replace ``name`` with the concatenation of ``sources`` (at most 32), each at the
        generation listed; safe to repeat while the sources exist."""
        body = {
            "sourceObjects": [
                {"name": s.name, **({"generation": str(s.generation)} if s.generation else {})}
                for s in sources
            ],
            "destination": {"contentType": _MEDIA},
        }
        response = await self.client.request(
            "ComposeObject", "POST", self.client.object_path(name) + "/compose", json=body
        )
        return ObjectInfo.parse(response.json())

    async def copy(self, source: str, destination: str) -> ObjectInfo:
        """A server-side copy; rewritten in as many calls as GCS asks for."""
        bucket = quote_name(self.client.params.bucket)
        path = f"{self.client.object_path(source)}/rewriteTo/b/{bucket}/o/{quote_name(destination)}"
        params: dict[str, str] = {}
        while True:
            response = await self.client.request(
                "RewriteObject", "POST", path, params=params, json={}
            )
            body = response.json()
            if body.get("done"):
                resource = body.get("resource")
                return ObjectInfo.parse(resource) if resource else await self.head(destination)
            params["rewriteToken"] = str(body["rewriteToken"])

    async def stream(self, name: str, offset: int, length: int | None = None) -> httpx.Response:
        """The object's bytes from ``offset`` (``length`` of them when given), streamed: the
        caller closes the answer."""
        end = "" if length is None else str(offset + length - 1)
        return await self.client.request(
            "GetObject", "GET", self.client.object_path(name), params={"alt": "media"},
            headers={"Range": f"bytes={offset}-{end}"}, stream=True,
        )  # fmt: skip
