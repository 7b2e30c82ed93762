"""tus uploads: resumable uploads of files that become blobs (and tagged artifacts) of a
repository.

A tus upload is an upload session of its repository (``_uploads/<id>``: the same writer,
the same hash states kept in storage, the same commit into the content-addressed store as a
registry upload), plus its ``.info``: JSON with what tus needs beyond the bytes (length,
metadata, expiry, concatenation), after tusd's ``s3store``. On S3 the session's data is one
multipart upload whose parts are ``chunksize`` each, with the tail under 5 MiB kept as
pending objects beside it (the driver's writer), so the offset is computed from the parts and
the pending objects by whichever instance asks, with nothing in memory.

Every request that changes an upload takes the lease of the session's ``tuslock`` first,
without waiting: a second request at the same time, from any process or instance, is refused
(423) rather than writing beside the first, and a late one finds the upload as the first left
it. A finished upload's ``.info`` keeps its digest (and manifest) until it expires, so that a
client asking after the final response still learns what it became; its session is gone.

Expired uploads (untouched for ``expiration``) are gone for every request at once and their
storage is purged by ``purge``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any

from wharf.config.tus import TusConfig
from wharf.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
    RegistryError,
    SizeInvalid,
    TooManyRequests,
)
from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry.gc.guard import WriteGuard
from wharf.registry.namespace import Registry, Repository
from wharf.registry.upload_hashes import SessionHashes
from wharf.registry.upload_pipeline import BATCH_SIZE
from wharf.storage import paths
from wharf.storage.driver import Lease, LeaseBusy, PathNotFound

__all__ = [
    "ARTIFACT_TYPE",
    "CHECKSUMS",
    "EMPTY_CONFIG",
    "TusUpload",
    "TusUploads",
    "UploadLocked",
]

log = logging.getLogger("wharf.tus")

#: Algorithms of the checksum extension, by their tus names.
CHECKSUMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": hashlib.md5,
}
#: oras's artifact type for a file pushed without one.
ARTIFACT_TYPE = "application/vnd.unknown.artifact.v1"
#: The OCI empty descriptor's content, the config of an artifact manifest.
EMPTY_CONFIG = b"{}"
_EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
_TITLE = "org.opencontainers.image.title"
_LAYER_MEDIA_TYPE = "application/octet-stream"
_MAX_INFO = 64 << 10


class UploadLocked(RegistryError):
    """Another request is writing to the upload (tus: 423 Locked)."""

    code, status, message = (
        "BLOB_UPLOAD_INVALID",
        423,
        "the upload is being written by another request",
    )


@dataclass(frozen=True, slots=True)
class TusUpload:
    """An upload's ``.info``, in tusd's names (``ID``, ``Size``, ``MetaData``, ...) plus wharf's."""

    ID: str
    Repository: str
    Size: int | None  # None: deferred
    MetaData: dict[str, str]
    Created: str
    Expires: str
    Client: str
    IsPartial: bool = False
    IsFinal: bool = False
    PartialUploads: tuple[str, ...] = ()
    #: Set once finished: the blob, and the manifest when tagged.
    Digest: str | None = None
    Manifest: str | None = None
    #: The digest the bytes hash to, recorded before they are published, so that a request
    #: after a crash between publishing and recording it finishes the upload.
    Publishing: str | None = None
    Storage: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> RepositoryName:
        return RepositoryName(self.Repository)

    @property
    def finished(self) -> bool:
        return self.Digest is not None

    @property
    def expires(self) -> datetime:
        return datetime.fromisoformat(self.Expires)

    def encode(self) -> bytes:
        data = asdict(self)
        data["SizeIsDeferred"] = self.Size is None
        data["Offset"] = self.Size if self.finished else None
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, content: bytes) -> TusUpload:
        if len(content) > _MAX_INFO:
            raise ValueError("info too large")
        data = json.loads(content)
        if not isinstance(data, dict):
            raise ValueError("info is not an object")
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known["PartialUploads"] = tuple(known.get("PartialUploads") or ())
        upload = cls(**known)
        if not isinstance(upload.MetaData, dict) or not isinstance(upload.ID, str):
            raise ValueError("info fields of the wrong type")
        if upload.expires.tzinfo is None:  # read here, so that a bad date fails here
            raise ValueError("info expiry without a time zone")
        return upload


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def _limited(body: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """``body``, refused with 413 past ``limit`` bytes."""
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > limit:
            raise SizeInvalid(
                {"limit": limit}, message="the body goes past the upload's length", status=413
            )
        yield chunk


class _Spool:
    """A request body kept on disk (never in memory) until its checksum is known."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="wharf-tus-")  # noqa: SIM115
        self.size = 0

    async def fill(self, body: AsyncIterator[bytes], algorithm: str) -> bytes:
        """Write ``body`` to disk; its checksum."""
        hasher = CHECKSUMS[algorithm]()

        def put(chunk: bytes) -> None:
            hasher.update(chunk)
            self.file.write(chunk)

        async for chunk in body:
            await asyncio.to_thread(put, chunk)
            self.size += len(chunk)
        return bytes(hasher.digest())

    async def chunks(self) -> AsyncIterator[bytes]:
        await asyncio.to_thread(self.file.seek, 0)
        while chunk := await asyncio.to_thread(self.file.read, BATCH_SIZE):
            yield chunk

    def close(self) -> None:
        self.file.close()


class TusUploads:
    """The tus uploads of a registry."""

    def __init__(
        self,
        registry: Registry,
        config: TusConfig,
        *,
        guard: WriteGuard | None = None,
        count: Callable[..., None] | None = None,
    ) -> None:
        self.registry = registry
        self.driver = registry.driver
        self.config = config
        self.guard = guard
        self._count = count or (lambda name, value=1, **labels: None)

    # -- reading ----------------------------------------------------------------------------

    async def get(self, upload_id: str) -> TusUpload:
        """The upload; BlobUploadUnknown when there is none, or it expired."""
        if not _is_id(upload_id):
            raise BlobUploadUnknown({"upload": upload_id[:100]})
        try:
            content = await self.driver.get_content(paths.tus_info(upload_id))
        except PathNotFound:
            raise BlobUploadUnknown({"upload": upload_id}) from None
        try:
            upload = TusUpload.decode(content)
        except (ValueError, TypeError) as error:
            log.warning("tus upload %s has an unreadable .info: %s", upload_id, error)
            raise BlobUploadUnknown({"upload": upload_id}) from None
        if upload.expires <= datetime.now(UTC):
            raise BlobUploadUnknown({"upload": upload_id}, message="the upload expired")
        return upload

    def repository(self, upload: TusUpload) -> Repository:
        return self.registry.repository(upload.name)

    async def offset(self, upload: TusUpload) -> int:
        """Bytes received: computed from storage (the parts and pending objects on S3)."""
        if upload.finished:
            return upload.Size or 0
        try:
            return await self.repository(upload).uploads.size(upload.ID)
        except BlobUploadUnknown:
            # Finished or terminated by another request since the .info was read, or
            # published by one that ended before recording it.
            current = await self.get(upload.ID)
            if not current.finished and await self.recover(current) is None:
                raise
            return current.Size or 0

    # -- creating ---------------------------------------------------------------------------

    async def create(
        self,
        name: RepositoryName,
        *,
        size: int | None,
        metadata: dict[str, str],
        client: str,
        partial: bool = False,
    ) -> TusUpload:
        """A new upload; TooManyRequests when the client holds its limit of unfinished ones."""
        try:
            held = await self.driver.list(paths.tus_client_dir(client))
        except PathNotFound:
            held = []
        limit = self.config.max_uploads_per_client
        if len(held) >= limit:
            raise TooManyRequests(
                {"limit": limit},
                message="too many unfinished uploads: finish or terminate some first",
            )
        repository = self.registry.repository(name)
        upload_id = await repository.uploads.create()
        now = _now()
        upload = TusUpload(
            ID=upload_id,
            Repository=name.value,
            Size=size,
            MetaData=metadata,
            Created=now.isoformat(),
            Expires=(now + self.config.expiration).isoformat(),
            Client=client,
            IsPartial=partial,
            Storage={"Type": self.driver.name, "Path": paths.upload_data(name, upload_id)},
        )
        await asyncio.gather(
            self.driver.put_content(paths.tus_lock(name, upload_id), b""),
            self.driver.put_content(paths.tus_client_upload(client, upload_id), b""),
            self._write(upload),
        )
        self._count("wharf_tus_uploads_total", event="created")
        return upload

    async def concatenate(
        self,
        name: RepositoryName,
        parts: list[str],
        *,
        metadata: dict[str, str],
        client: str,
    ) -> TusUpload:
        """A final upload made of finished partial uploads of repository ``name``, in order:
        their blobs joined by the driver, hashed, and published as one."""
        partials = [await self.get(part) for part in parts]
        for part in partials:
            if not part.IsPartial or part.Repository != name.value:
                raise BlobUploadInvalid(
                    {"upload": part.ID}, message="not a partial upload of this repository"
                )
            if not part.finished:
                raise BlobUploadInvalid({"upload": part.ID}, message="partial upload unfinished")
        total = sum(part.Size or 0 for part in partials)
        if total > self.config.max_size:
            raise SizeInvalid({"limit": self.config.max_size}, status=413)
        upload = await self.create(name, size=total, metadata=metadata, client=client)
        upload = replace(upload, IsFinal=True, PartialUploads=tuple(parts))
        await self._write(upload)
        sources = [paths.blob_data(Digest.parse(part.Digest or "")) for part in partials]
        async with self._leased(upload) as current:
            repository = self.repository(current)
            # Joined inside the storage where it can (S3: part copies of the partial blobs),
            # then hashed from storage and published as any session is.
            await self.driver.concatenate(sources, paths.upload_data(name, current.ID))
            return await self._finish(current, repository)

    # -- writing ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _leased(self, upload: TusUpload) -> AsyncIterator[TusUpload]:
        """The upload's lease, and its ``.info`` as read under it."""
        try:
            lease = await self.driver.lease(paths.tus_lock(upload.name, upload.ID))
        except LeaseBusy:
            raise UploadLocked({"upload": upload.ID}) from None
        except PathNotFound:
            raise _Gone() from None
        try:
            yield await self.get(upload.ID)
        finally:
            # Shielded: a cancelled request must still let the next one in. Released as
            # deleted when the session went with the request (finished or terminated).
            await asyncio.shield(self._release(lease, upload))

    async def _release(self, lease: Lease, upload: TusUpload) -> None:
        try:
            await self.driver.stat(paths.tus_lock(upload.name, upload.ID))
        except PathNotFound:
            await lease.release(deleted=True)
        else:
            await lease.release()

    async def append(
        self,
        upload: TusUpload,
        body: AsyncIterator[bytes],
        *,
        offset: int,
        length: int | None = None,
        checksum: tuple[str, bytes] | None = None,
    ) -> tuple[TusUpload, int]:
        """Append a PATCH body at ``offset`` (RangeInvalid, 409, elsewhere), setting a
        deferred ``length``; verified against ``checksum`` (460 and nothing kept on a
        mismatch). Finishing the upload publishes it. The upload and its new offset."""
        try:
            async with self._leased(upload) as current:
                return await self._append(current, body, offset, length, checksum)
        except _Gone:
            current = await self.get(upload.ID)  # finished (or gone) meanwhile
            current = await self.recover(current) or current
            if current.finished and offset == current.Size:
                return current, offset
            raise RangeInvalid(
                {"offset": offset}, message="the upload is finished", status=409
            ) from None

    async def _append(
        self,
        current: TusUpload,
        body: AsyncIterator[bytes],
        offset: int,
        length: int | None,
        checksum: tuple[str, bytes] | None,
    ) -> tuple[TusUpload, int]:
        if length is not None:
            if current.Size is not None and current.Size != length:
                raise BlobUploadInvalid(
                    {"length": length}, message="Upload-Length cannot change once set"
                )
            if length > self.config.max_size:
                raise SizeInvalid({"limit": self.config.max_size}, status=413)
            if length < offset:
                raise BlobUploadInvalid({"length": length}, message="Upload-Length below offset")
            current = replace(current, Size=length)
        if current.finished:
            if offset != current.Size:
                raise RangeInvalid({"offset": offset}, message="the upload is finished", status=409)
            return current, offset
        limit = (current.Size if current.Size is not None else self.config.max_size) - offset
        body = _limited(body, max(limit, 0))
        spool = None
        repository = self.repository(current)
        try:
            if checksum is not None:
                algorithm, expected = checksum
                spool = _Spool()
                actual = await spool.fill(body, algorithm)
                if actual != expected:
                    self._count("wharf_tus_checksum_mismatches_total")
                    raise DigestInvalid(
                        {"algorithm": algorithm, "computed": base64.b64encode(actual).decode()},
                        message="checksum mismatch: the chunk was discarded",
                        status=460,
                    )
                body = spool.chunks()
            try:
                size = await repository.uploads.append(current.ID, body, start=offset)
            except RangeInvalid as error:
                raise RangeInvalid(
                    error.detail,
                    message="Upload-Offset is not where the upload ends",
                    status=409,
                ) from None
        finally:
            if spool is not None:
                spool.close()
        self._count("wharf_tus_received_bytes_total", size - offset)
        current = replace(current, Expires=(_now() + self.config.expiration).isoformat())
        if current.Size is not None and size == current.Size:
            current = await self._finish(current, repository)
        else:
            await self._write(current)
        return current, size

    async def _finish(self, upload: TusUpload, repository: Repository) -> TusUpload:
        """Publish the received bytes as a blob, and tag an artifact of it when asked. Where
        the hash state of the whole is kept (as it nearly always is), its digest is recorded
        first, so that a crash between the steps leaves an upload ``recover`` finishes."""
        size = upload.Size or 0
        hashes = SessionHashes(self.driver, upload.name, upload.ID, self.registry.hash_executor)
        hasher = await hashes.load(size)
        if hasher is not None:
            upload = replace(upload, Publishing=f"{hasher.algorithm}:{hasher.hexdigest()}")
            await self._write(upload)
        info = await repository.uploads.publish(upload.ID, start=size)
        return await self._finished(upload, repository, info.digest, info.size)

    async def _finished(
        self, upload: TusUpload, repository: Repository, digest: Digest, size: int
    ) -> TusUpload:
        manifest = None
        tag = upload.MetaData.get("tag")
        if tag and not upload.IsPartial:
            manifest = await self._tag(repository, upload, digest, size, Tag(tag))
        finished = replace(upload, Digest=str(digest), Manifest=manifest, Publishing=None)
        await self._write(finished)
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.tus_client_upload(upload.Client, upload.ID))
        self._count("wharf_tus_uploads_total", event="finished")
        self._count("wharf_tus_finished_bytes_total", size)
        return finished

    async def recover(self, upload: TusUpload) -> TusUpload | None:
        """The upload finished, when its session is gone after its bytes were published but
        before that was recorded (a crash between the two); None when it was not so."""
        if upload.Publishing is None or upload.finished:
            return None
        repository = self.repository(upload)
        digest = Digest.parse(upload.Publishing)
        try:
            info = await repository.blobs.stat(digest)
        except BlobUnknown:
            return None
        log.info("tus upload %s: finishing what a request published before it ended", upload.ID)
        return await self._finished(upload, repository, digest, info.size)

    async def _tag(
        self, repository: Repository, upload: TusUpload, digest: Digest, size: int, tag: Tag
    ) -> str:
        """Store an OCI artifact manifest with the file as its one layer, as ``oras push``
        makes one, and tag it."""
        empty = Digest.parse("sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest())
        if not await self.registry.blobs.exists(empty):
            await self.registry.blobs.put(empty, EMPTY_CONFIG)
        await repository.blobs.link(empty)
        meta = upload.MetaData
        layer: dict[str, Any] = {
            "mediaType": meta.get("mediatype") or _LAYER_MEDIA_TYPE,
            "digest": str(digest),
            "size": size,
            "annotations": {_TITLE: meta.get("filename") or upload.ID},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": _MANIFEST_MEDIA_TYPE,
            "artifactType": meta.get("artifacttype") or ARTIFACT_TYPE,
            "config": {
                "mediaType": _EMPTY_MEDIA_TYPE,
                "digest": str(empty),
                "size": len(EMPTY_CONFIG),
                "data": base64.b64encode(EMPTY_CONFIG).decode(),
            },
            "layers": [layer],
            "annotations": {
                "org.opencontainers.image.created": upload.Created.replace("+00:00", "Z")
            },
        }
        body = json.dumps(manifest, separators=(",", ":")).encode()
        parsed = await repository.manifests.put(body, _MANIFEST_MEDIA_TYPE, tag, guard=self.guard)
        return str(parsed.digest)

    async def _write(self, upload: TusUpload) -> None:
        await self.driver.put_content(paths.tus_info(upload.ID), upload.encode())

    # -- ending -----------------------------------------------------------------------------

    async def terminate(self, upload: TusUpload) -> None:
        """Discard an upload: its session (on S3: abort the multipart upload, delete the
        pending objects) and its ``.info``. A finished upload's blob stays."""
        try:
            async with self._leased(upload) as current:
                await self._discard(current)
        except _Gone:
            await self._discard(upload)
        self._count("wharf_tus_uploads_total", event="terminated")

    async def _discard(self, upload: TusUpload) -> None:
        if not upload.finished:
            with contextlib.suppress(BlobUploadUnknown):
                await self.repository(upload).uploads.cancel(upload.ID)
        for path in (paths.tus_client_upload(upload.Client, upload.ID), paths.tus_info(upload.ID)):
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(path)

    async def purge(self, now: datetime | None = None) -> int:
        """Discard every expired upload (unfinished or finished); how many."""
        now = now or datetime.now(UTC)
        try:
            listed = await self.driver.list(paths.tus_dir())
        except PathNotFound:
            return 0
        purged = 0
        for path in listed:
            upload_id = path.rpartition("/")[2].removesuffix(".info")
            if not path.endswith(".info") or not _is_id(upload_id):
                continue
            try:
                upload = TusUpload.decode(await self.driver.get_content(path))
            except PathNotFound:
                continue
            except (ValueError, TypeError):
                log.warning("tus: unreadable %s left alone", path)
                continue
            if upload.expires > now:
                continue
            # Every request refuses an expired upload, so nothing can start writing to it
            # now; one that began before it expired still holds the session (busy: skipped
            # until the next round).
            try:
                await self._discard(upload)
            except RegistryError as error:
                log.info("tus upload %s not purged this time: %s", upload.ID, error)
                continue
            purged += 1
            self._count("wharf_tus_uploads_total", event="expired")
        return purged


class _Gone(Exception):
    """The upload's session is gone (finished or terminated) before its lease was taken."""


def _is_id(text: str) -> bool:
    parts = text.split("-")
    return (
        len(text) == 36
        and [len(p) for p in parts] == [8, 4, 4, 4, 12]
        and all(c in "0123456789abcdef" for c in text.replace("-", ""))
    )


def client_key(identity: str) -> str:
    """The storage name of a client (a user, or an address for anonymous callers)."""
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


__all__ += ["client_key"]
