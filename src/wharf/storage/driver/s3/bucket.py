"""The S3 operations the driver is made of: paginated listings, batched deletes, ranged
fetches, multipart bookkeeping and server-side copies, each as one awaitable.

Paths and pending objects are the business of ``layout`` and ``writer``; this module deals in
keys only. Listing pages hold ``page_size`` keys (S3's maximum, 1000, unless a test asks for
fewer), and a DeleteObjects batch is one page.

The two calls that are not idempotent are never simply repeated: after a transient failure
``create_upload`` looks for the upload the lost response would have named, and
``complete_upload`` checks whether the upload is gone and the object has the expected size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import HTTPClientError

from wharf.storage.driver.base import DriverError
from wharf.storage.driver.s3.client import (
    S3Client,
    S3Error,
    error_code,
    is_not_found,
    is_retryable,
)
from wharf.storage.driver.s3.params import MIN_CHUNK_SIZE, S3Parameters
from wharf.storage.driver.s3.part_stream import PartAborted, PartStream

__all__ = ["Bucket", "CorruptPart", "Fetched", "ObjectInfo", "Part", "Upload", "copy_ranges"]

_CONTENT_TYPE = "application/octet-stream"


class CorruptPart(HTTPClientError):
    """A streamed part's ETag is not the MD5 of the bytes sent."""

    fmt = "part {number} of {key}: ETag {etag} is not the MD5 of the bytes sent ({md5})"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None
    etag: str = ""


@dataclass(frozen=True, slots=True)
class Upload:
    key: str
    upload_id: str
    initiated: datetime | None


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    total: int  # the object's size
    etag: str


def copy_ranges(size: int, chunk: int, *, last: bool) -> list[tuple[int, int]]:
    """Inclusive byte ranges of ``chunk`` covering ``size`` bytes. When the copied parts
    will not be the upload's last (``last`` false), a short tail is merged into the part
    before it, since every part but the last must hold 5 MiB."""
    ranges = [(start, min(start + chunk, size) - 1) for start in range(0, size, chunk)]
    if not last and len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] + 1 < MIN_CHUNK_SIZE:
        tail = ranges.pop()
        ranges[-1] = (ranges[-1][0], tail[1])
    return ranges


class Bucket:
    """One bucket's operations, with the object settings every write carries."""

    def __init__(self, client: S3Client, params: S3Parameters, *, page_size: int = 1000) -> None:
        self.client = client
        self.s3 = client.s3
        self.name = params.bucket
        self.page_size = page_size
        self.copy_chunk = params.multipartcopychunksize
        # Half the pool at most: a big move must not starve the requests of other clients.
        self.copy_concurrency = min(params.multipartcopymaxconcurrency, client.max_threads // 2)
        self.copy_concurrency = max(1, self.copy_concurrency)
        self.copy_threshold = params.multipartcopythresholdsize
        # Encryption applies to every object holding registry bytes, pending ones included.
        self.encryption: dict[str, Any] = {}
        if params.encrypt:
            self.encryption["ServerSideEncryption"] = "aws:kms" if params.keyid else "AES256"
        if params.keyid:
            self.encryption["SSEKMSKeyId"] = params.keyid
        self.object_args: dict[str, Any] = {"ContentType": _CONTENT_TYPE, **self.encryption}
        if params.objectacl:
            self.object_args["ACL"] = params.objectacl
        if params.storageclass != "NONE":
            self.object_args["StorageClass"] = params.storageclass
        # A streamed part goes unsigned: over TLS the transport protects it, over plain HTTP
        # its ETag must be its MD5, which KMS-encrypted objects' ETags are not.
        self.streamed_parts_md5 = not self.s3.meta.endpoint_url.startswith("https")
        self.streams_parts = not (self.streamed_parts_md5 and params.keyid)
        # Each streamed part holds a thread while it waits for its bytes: a quarter of the
        # pool at most, so that slow clients cannot starve everyone's other calls.
        self.max_streams = max(1, client.max_threads // 4)
        self.active_streams = 0

    # -- objects ----------------------------------------------------------------------------

    async def head(self, key: str) -> ObjectInfo:
        response = await self.client.call(
            "HeadObject", lambda: self.s3.head_object(Bucket=self.name, Key=key)
        )
        return ObjectInfo(
            key, response["ContentLength"], response.get("LastModified"), response["ETag"]
        )

    async def get(self, key: str) -> bytes:
        def get() -> bytes:
            response = self.s3.get_object(Bucket=self.name, Key=key)
            with response["Body"] as body:
                return body.read()

        return await self.client.call("GetObject", get)

    async def fetch(
        self, key: str, start: int, length: int, *, if_match: str | None = None
    ) -> Fetched:
        """``length`` bytes from ``start``; fewer at the end. The body is read in the worker
        thread, so a connection dropped mid-body is retried like any other failure."""
        args: dict[str, Any] = {"Range": f"bytes={start}-{start + length - 1}"}
        if if_match:
            args["IfMatch"] = if_match

        def fetch() -> Fetched:
            response = self.s3.get_object(Bucket=self.name, Key=key, **args)
            with response["Body"] as body:
                data = body.read()
            content_range = response.get("ContentRange", "")
            if not content_range:  # a server that ignores Range sends everything
                return Fetched(data[start : start + length], len(data), response["ETag"])
            return Fetched(data, int(content_range.rpartition("/")[2]), response["ETag"])

        return await self.client.call("GetObject", fetch)

    async def put(self, key: str, data: bytes, *, pending: bool = False) -> str:
        """Store ``data`` at ``key``; its ETag."""
        # Pending objects live for minutes: no ACL or storage class (an infrequent-access
        # class would bill each one for 30 days), but the same encryption.
        args = self.encryption if pending else self.object_args

        def put() -> str:
            response = self.s3.put_object(Bucket=self.name, Key=key, Body=data, **args)
            return str(response.get("ETag", ""))

        return await self.client.call("PutObject", put)

    async def get_tagged(self, key: str) -> tuple[bytes, str]:
        """The content of ``key`` and its ETag."""

        def get() -> tuple[bytes, str]:
            response = self.s3.get_object(Bucket=self.name, Key=key)
            with response["Body"] as body:
                return body.read(), str(response.get("ETag", ""))

        return await self.client.call("GetObject", get)

    async def delete_key(self, key: str) -> None:
        await self.client.call(
            "DeleteObject", lambda: self.s3.delete_object(Bucket=self.name, Key=key)
        )

    async def delete_keys(self, keys: Sequence[str]) -> None:
        """DeleteObjects in batches of one page; missing keys are no error."""
        for start in range(0, len(keys), self.page_size):
            batch: list[Any] = [{"Key": key} for key in keys[start : start + self.page_size]]

            def delete(batch: list[Any] = batch) -> Any:
                return self.s3.delete_objects(
                    Bucket=self.name, Delete={"Objects": batch, "Quiet": True}
                )

            response = await self.client.call("DeleteObjects", delete)
            errors = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                raise DriverError(
                    f"S3 DeleteObjects failed for {len(errors)} keys, first {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message', '')}".rstrip()
                )

    # -- listings ---------------------------------------------------------------------------

    async def list_pages(
        self,
        prefix: str,
        *,
        delimiter: str = "",
        start_after: str = "",
        page_size: int = 0,
        truncated: list[bool] | None = None,
    ) -> AsyncIterator[tuple[list[ObjectInfo], list[str]]]:
        """Pages of (objects, common prefixes) under ``prefix``, in key order, from the first
        key after ``start_after``; ``page_size``: keys per page when fewer are wanted;
        ``truncated``: told of each page, before it is yielded, whether more follow."""
        token = ""
        while True:
            args: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix}
            args["MaxKeys"] = min(page_size, self.page_size) if page_size else self.page_size
            if start_after and not token:
                args["StartAfter"] = start_after
            if delimiter:
                args["Delimiter"] = delimiter
            if token:
                args["ContinuationToken"] = token

            def list_objects(args: dict[str, Any] = args) -> Any:
                return self.s3.list_objects_v2(**args)

            response = await self.client.call("ListObjectsV2", list_objects)
            objects = [
                ObjectInfo(o["Key"], o["Size"], o.get("LastModified"), o.get("ETag", ""))
                for o in response.get("Contents", [])
            ]
            prefixes = [p["Prefix"] for p in response.get("CommonPrefixes", [])]
            if truncated is not None:
                truncated.append(bool(response.get("IsTruncated")))
            yield objects, prefixes
            token = response.get("NextContinuationToken", "")
            if not response.get("IsTruncated") or not token:
                return

    async def list_all(self, prefix: str) -> list[ObjectInfo]:
        return [obj async for page, _ in self.list_pages(prefix) for obj in page]

    async def list_uploads(self, prefix: str) -> list[Upload]:
        """Multipart uploads in progress on keys starting with ``prefix``."""
        uploads: list[Upload] = []
        key_marker = upload_marker = ""
        while True:
            args: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix}
            args["MaxUploads"] = self.page_size
            if key_marker:
                args["KeyMarker"] = key_marker
                args["UploadIdMarker"] = upload_marker

            def list_uploads(args: dict[str, Any] = args) -> Any:
                return self.s3.list_multipart_uploads(**args)

            response = await self.client.call("ListMultipartUploads", list_uploads)
            uploads += [
                Upload(u["Key"], u["UploadId"], u.get("Initiated"))
                for u in response.get("Uploads", [])
            ]
            key_marker = response.get("NextKeyMarker", "")
            upload_marker = response.get("NextUploadIdMarker", "")
            if not response.get("IsTruncated") or not key_marker:
                return uploads

    async def list_parts(self, key: str, upload_id: str) -> list[Part]:
        parts: list[Part] = []
        marker = 0
        while True:
            args: dict[str, Any] = {"Bucket": self.name, "Key": key, "UploadId": upload_id}
            if marker:
                args["PartNumberMarker"] = marker

            def list_parts(args: dict[str, Any] = args) -> Any:
                return self.s3.list_parts(**args)

            response = await self.client.call("ListParts", list_parts)
            parts += [
                Part(p["PartNumber"], p["Size"], p["ETag"]) for p in response.get("Parts", [])
            ]
            marker = int(response.get("NextPartNumberMarker") or 0)
            if not response.get("IsTruncated") or not marker:
                return parts

    # -- multipart uploads ------------------------------------------------------------------

    async def create_upload(self, key: str, known: set[str] | None = None) -> str:
        """A new multipart upload of ``key``; ``known``: the uploads of ``key`` that existed
        before (listed first when not given), so that one created by a call whose answer
        was lost can be told apart and adopted."""

        def create() -> str:
            response = self.s3.create_multipart_upload(
                Bucket=self.name, Key=key, **self.object_args
            )
            return response["UploadId"]

        if known is None:
            known = {u.upload_id for u in await self.list_uploads(key) if u.key == key}
        for attempt in range(self.client.retry.attempts):
            try:
                return await self.client.call("CreateMultipartUpload", create, idempotent=False)
            except S3Error as exc:
                if not is_retryable(exc) or attempt + 1 >= self.client.retry.attempts:
                    raise
                # The upload may exist with its answer lost: adopt it rather than leak it.
                created = [
                    u for u in await self.list_uploads(key)
                    if u.key == key and u.upload_id not in known
                ]  # fmt: skip
                if created:
                    return max(created, key=lambda u: u.initiated or datetime.min).upload_id
                await asyncio.sleep(self.client.retry.delay(attempt))
        raise AssertionError("unreachable")

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> Part:
        response = await self.client.call(
            "UploadPart",
            lambda: self.s3.upload_part(
                Bucket=self.name, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            ),
        )
        return Part(number, len(data), response["ETag"])

    async def upload_streamed_part(self, key: str, upload_id: str, stream: PartStream) -> Part:
        """Upload ``stream`` as part ``stream.number``, sending its bytes as they are fed."""

        def upload() -> Part:
            reader = stream.reader(md5=self.streamed_parts_md5)
            try:
                response = self.client.streaming().upload_part(
                    Bucket=self.name,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=stream.number,
                    Body=reader,  # type: ignore[arg-type]
                    ContentLength=stream.size,
                )
            except S3Error:
                if stream.aborted:
                    raise PartAborted(f"part {stream.number} of {key} ended early") from None
                raise
            etag = response["ETag"]
            md5 = reader.md5_hex()
            if md5 is not None and etag.strip('"') != md5:
                # The store holds other bytes than those sent: retried, as a dropped
                # connection is (the part is sent again whole).
                raise CorruptPart(number=stream.number, key=key, etag=etag, md5=md5)
            return Part(stream.number, stream.size, etag)

        return await self.client.call("UploadPart", upload)

    async def copy_part(
        self, source: str, etag: str, key: str, upload_id: str, number: int, first: int, last: int
    ) -> Part:
        response = await self.client.call(
            "UploadPartCopy",
            lambda: self.s3.upload_part_copy(
                Bucket=self.name,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.name, "Key": source},
                CopySourceRange=f"bytes={first}-{last}",
                CopySourceIfMatch=etag,
            ),
        )
        return Part(number, last - first + 1, response["CopyPartResult"]["ETag"])

    async def complete_upload(
        self, key: str, upload_id: str, parts: Sequence[Part], size: int
    ) -> None:
        completed: Any = {"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]}

        def complete() -> None:
            self.s3.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload_id, MultipartUpload=completed
            )

        for attempt in range(self.client.retry.attempts):
            try:
                await self.client.call("CompleteMultipartUpload", complete, idempotent=False)
                return
            except S3Error as exc:
                if error_code(exc) == "NoSuchUpload" and attempt:
                    # Completed by the attempt whose answer was lost (stores such as Swift
                    # keep a completed upload listable for a while).
                    if await self._has_size(key, size):
                        return
                    raise
                if not is_retryable(exc) or attempt + 1 >= self.client.retry.attempts:
                    raise
                # A lost answer may hide a completed upload: then the upload is gone and the
                # object is there with the expected size. Otherwise completing again is safe.
                try:
                    await self.list_parts(key, upload_id)
                except S3Error as check:
                    if error_code(check) != "NoSuchUpload":
                        raise
                    if await self._has_size(key, size):
                        return
                    raise exc from check
                await asyncio.sleep(self.client.retry.delay(attempt))

    async def _has_size(self, key: str, size: int) -> bool:
        try:
            return (await self.head(key)).size == size
        except S3Error as exc:
            if is_not_found(exc):
                return False
            raise

    async def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            await self.client.call(
                "AbortMultipartUpload",
                lambda: self.s3.abort_multipart_upload(
                    Bucket=self.name, Key=key, UploadId=upload_id
                ),
            )
        except S3Error as exc:
            if error_code(exc) != "NoSuchUpload":  # aborted already, or completed
                raise

    # -- copies -----------------------------------------------------------------------------

    async def copy_parts(
        self, source: ObjectInfo, key: str, upload_id: str, first_number: int, *, last: bool
    ) -> list[Part]:
        """Copy ``source`` into parts of ``upload_id`` from ``first_number`` on, in parallel
        (``multipartcopymaxconcurrency`` at a time)."""
        limit = asyncio.Semaphore(self.copy_concurrency)
        ranges = copy_ranges(source.size, self.copy_chunk, last=last)

        async def one(number: int, first: int, end: int) -> Part:
            async with limit:
                return await self.copy_part(
                    source.key, source.etag, key, upload_id, number, first, end
                )

        return list(
            await asyncio.gather(
                *(one(first_number + i, first, end) for i, (first, end) in enumerate(ranges))
            )
        )

    async def copy(self, source: ObjectInfo, key: str) -> None:
        """Server-side copy: CopyObject up to the threshold, parallel UploadPartCopy above."""
        if source.size <= self.copy_threshold:
            await self.client.call(
                "CopyObject",
                lambda: self.s3.copy_object(
                    Bucket=self.name,
                    Key=key,
                    CopySource={"Bucket": self.name, "Key": source.key},
                    **self.object_args,
                ),
            )
            return
        upload_id = await self.create_upload(key)
        try:
            parts = await self.copy_parts(source, key, upload_id, 1, last=True)
            await self.complete_upload(key, upload_id, parts, source.size)
        except BaseException:
            await asyncio.shield(self.abort_upload(key, upload_id))
            raise
