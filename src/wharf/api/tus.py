"""The tus 1.0.0 endpoint (``tus.path``, ``/tus/`` by default): core protocol and the
creation, creation-with-upload, creation-defer-length, expiration, checksum, termination and
concatenation extensions, over ``wharf.registry.tus``.

``Upload-Metadata`` names the ``repository`` (required, also on partial uploads, so that each
is authorized), and optionally ``filename``, ``mediatype``, ``tag`` and ``artifacttype``. Every
request but OPTIONS needs push access to the repository, through the registry's access
controller. Responses carry ``Tus-Resumable`` and, for allowed origins, the CORS headers, also
on errors, so that a browser client sees why a request failed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from wharf.api.context import AppContext
from wharf.api.http import Request, Response, error_response
from wharf.auth import Access
from wharf.config.tus import TusConfig
from wharf.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    NameInvalid,
    RegistryError,
    SizeInvalid,
    Unsupported,
)
from wharf.observability.context import note_actor, note_route
from wharf.reference import RepositoryName, Tag
from wharf.registry.tus import CHECKSUMS, TusUpload, TusUploads, client_key

__all__ = ["TusEndpoint"]

VERSION = "1.0.0"
EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,"
    "concatenation"
)
_OFFSET_TYPE = "application/offset+octet-stream"
_METADATA_KEYS = ("repository", "filename", "mediatype", "tag", "artifacttype")
_MEDIA_TYPE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
_KEY_RE = re.compile(r"[^\s,]{1,128}")
_ALLOW_HEADERS = (
    "Authorization, Origin, X-Requested-With, X-Request-ID, X-HTTP-Method-Override, "
    "Content-Type, Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, "
    "Upload-Defer-Length, Upload-Concat, Upload-Checksum"
)
_EXPOSE_HEADERS = (
    "Upload-Offset, Location, Upload-Length, Tus-Version, Tus-Resumable, Tus-Max-Size, "
    "Tus-Extension, Tus-Checksum-Algorithm, Upload-Metadata, Upload-Defer-Length, "
    "Upload-Concat, Upload-Expires, Docker-Content-Digest, Wharf-Manifest-Digest, "
    "WWW-Authenticate"
)
_METHODS = "POST, HEAD, PATCH, OPTIONS, DELETE"


def _int_header(request: Request, name: str) -> int | None:
    value = request.header(name)
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 19:
        raise BlobUploadInvalid({name: value[:40]}, message=f"invalid {name} header")
    return int(value)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


class TusEndpoint:
    """Answers every request under ``tus.path``."""

    def __init__(self, ctx: AppContext, config: TusConfig, uploads: TusUploads) -> None:
        self.ctx = ctx
        self.config = config
        self.uploads = uploads
        #: The endpoint's path under ``http.prefix``, with and without its trailing slash.
        self.path = config.path

    def owns(self, path: str) -> bool:
        return path.startswith(self.path) or path == self.path.rstrip("/")

    async def __call__(self, request: Request, path: str) -> Response:
        note_route("tus")
        try:
            response = await self._handle(request, path)
        except RegistryError as error:
            response = error_response(error)
            if isinstance(error, SizeInvalid) and error.http_status == 413:
                response.headers["Connection"] = "close"
        response.headers["Tus-Resumable"] = VERSION
        response.headers.update(self._cors(request))
        return response

    def _cors(self, request: Request) -> dict[str, str]:
        cors = self.config.cors
        origin = request.header("origin")
        if origin is None or not cors.allow_origins:
            return {}
        if "*" in cors.allow_origins:
            allowed = "*"
        elif origin in cors.allow_origins:
            allowed = origin
        else:
            return {}
        headers = {
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Expose-Headers": ", ".join([_EXPOSE_HEADERS, *cors.expose_headers]),
            "Vary": "Origin",
        }
        if cors.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        if request.method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = _METHODS
            headers["Access-Control-Allow-Headers"] = ", ".join(
                [_ALLOW_HEADERS, *cors.allow_headers]
            )
            headers["Access-Control-Max-Age"] = str(int(cors.max_age.total_seconds()))
        return headers

    async def _handle(self, request: Request, path: str) -> Response:
        method = request.method
        override = request.header("x-http-method-override")
        if override and method == "POST":
            method = override.strip().upper()
        if method == "OPTIONS":
            await request.drain()
            return Response(
                204,
                headers={
                    "Tus-Version": VERSION,
                    "Tus-Extension": EXTENSIONS,
                    "Tus-Max-Size": str(self.config.max_size),
                    "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
                },
            )
        if request.header("tus-resumable") != VERSION:
            raise Unsupported(
                {"tus-resumable": (request.header("tus-resumable") or "")[:20]},
                message="Tus-Resumable 1.0.0 required",
                status=412,
                headers={"Tus-Version": VERSION},
            )
        rest = path[len(self.path) :] if path.startswith(self.path) else ""
        if not rest:
            if method != "POST":
                raise Unsupported({"method": method}, message="method not allowed")
            return await self._create(request)
        if "/" in rest:
            raise BlobUploadUnknown({"upload": rest[:100]})
        if method not in ("HEAD", "PATCH", "DELETE"):
            raise Unsupported({"method": method}, message="method not allowed")
        upload = await self.uploads.get(rest)
        await self._authorize(request, upload.name)
        if method == "HEAD":
            return await self._head(upload)
        self.ctx.require_writable()
        if method == "PATCH":
            return await self._patch(request, upload)
        await request.drain()
        await self.uploads.terminate(upload)
        return Response(204)

    async def _authorize(self, request: Request, name: RepositoryName) -> str:
        """Push access to ``name``; the client's storage key (its user, else its address)."""
        user = ""
        access = self.ctx.access
        if access is not None:
            identity = await access.authorize(
                request.headers, (Access("repository", name.value, "push"),)
            )
            note_actor(identity.name)
            user = identity.name
        if user:
            return client_key("user:" + user)
        client = request.scope.get("client")
        return client_key("address:" + (client[0] if client else ""))

    # -- requests ---------------------------------------------------------------------------

    def _metadata(self, request: Request) -> tuple[dict[str, str], str]:
        raw = request.header("upload-metadata") or ""
        if len(raw) > self.config.max_metadata_size:
            raise SizeInvalid(
                {"limit": self.config.max_metadata_size},
                message="Upload-Metadata too large",
                status=413,
            )
        metadata: dict[str, str] = {}
        for pair in (p.strip() for p in raw.split(",") if p.strip()):
            key, _, encoded = pair.partition(" ")
            if not _KEY_RE.fullmatch(key) or key in metadata:
                raise BlobUploadInvalid({"key": key[:40]}, message="invalid Upload-Metadata key")
            try:
                value = base64.b64decode(encoded.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise BlobUploadInvalid(
                    {"key": key[:40]}, message="Upload-Metadata value is not base64 UTF-8"
                ) from None
            metadata[key] = value
        name = metadata.get("repository")
        if not name:
            raise NameInvalid(message="Upload-Metadata must name the repository")
        RepositoryName(name)
        if metadata.get("tag"):
            Tag(metadata["tag"])
        for key in ("mediatype", "artifacttype"):
            if metadata.get(key) and not _MEDIA_TYPE_RE.fullmatch(metadata[key]):
                raise BlobUploadInvalid({key: metadata[key][:60]}, message=f"invalid {key}")
        filename = metadata.get("filename", "")
        if "/" in filename or "\\" in filename or filename in (".", "..") or len(filename) > 255:
            raise BlobUploadInvalid({"filename": filename[:60]}, message="invalid filename")
        return metadata, raw

    async def _create(self, request: Request) -> Response:
        self.ctx.require_writable()
        metadata, _ = self._metadata(request)
        name = RepositoryName(metadata["repository"])
        client = await self._authorize(request, name)
        concat = (request.header("upload-concat") or "").strip()
        if concat.startswith("final"):
            await request.drain()
            parts = self._parts(concat)
            upload = await self.uploads.concatenate(name, parts, metadata=metadata, client=client)
            return Response(201, headers=self._created_headers(upload, upload.Size))
        if concat and concat != "partial":
            raise BlobUploadInvalid({"upload-concat": concat[:60]}, message="invalid Upload-Concat")
        length = _int_header(request, "upload-length")
        deferred = request.header("upload-defer-length")
        if deferred is not None and (deferred.strip() != "1" or length is not None):
            raise BlobUploadInvalid(message="Upload-Defer-Length must be 1, without Upload-Length")
        if length is None and deferred is None:
            raise BlobUploadInvalid(message="Upload-Length or Upload-Defer-Length: 1 required")
        if length is not None and length > self.config.max_size:
            raise SizeInvalid(
                {"limit": self.config.max_size},
                message="Upload-Length over Tus-Max-Size",
                status=413,
            )
        upload = await self.uploads.create(
            name, size=length, metadata=metadata, client=client, partial=concat == "partial"
        )
        offset = None
        if (request.content_length or 0) > 0 or request.header("transfer-encoding"):
            # creation-with-upload: the body is the first PATCH's.
            if request.header("content-type") != _OFFSET_TYPE:
                raise BlobUploadInvalid(message=f"Content-Type must be {_OFFSET_TYPE}")
            upload, offset = await self.uploads.append(
                upload, request.stream(), offset=0, checksum=self._checksum(request)
            )
        else:
            await request.drain()
            if length == 0:  # nothing to wait for: finished at once
                upload, offset = await self.uploads.append(upload, _empty(), offset=0)
        return Response(201, headers=self._created_headers(upload, offset))

    def _parts(self, concat: str) -> list[str]:
        urls = concat.removeprefix("final").lstrip(";").split()
        if not urls or len(urls) > 1000:
            raise BlobUploadInvalid(message="Upload-Concat final needs the partial uploads")
        parts = []
        for url in urls:
            path = urlsplit(url).path
            prefixed = self.ctx.prefix + self.path
            if not path.startswith(prefixed):
                raise BlobUploadInvalid({"url": url[:100]}, message="not an upload of this server")
            parts.append(path[len(prefixed) :])
        return parts

    def _location(self, upload: TusUpload) -> str:
        host = self.ctx.config.http.host.rstrip("/")
        return f"{host}{self.ctx.prefix}{self.path}{upload.ID}"

    def _created_headers(self, upload: TusUpload, offset: int | None) -> dict[str, str]:
        headers = {"Location": self._location(upload), **self._upload_headers(upload)}
        if offset is not None:
            headers["Upload-Offset"] = str(offset)
        return headers

    def _upload_headers(self, upload: TusUpload) -> dict[str, str]:
        headers = {"Upload-Expires": _http_date(upload.expires)}
        if upload.finished:
            headers["Docker-Content-Digest"] = upload.Digest or ""
            if upload.Manifest:
                headers["Wharf-Manifest-Digest"] = upload.Manifest
        return headers

    async def _head(self, upload: TusUpload) -> Response:
        offset = await self.uploads.offset(upload)
        if not upload.finished and offset == upload.Size:
            upload = await self.uploads.get(upload.ID)  # finished meanwhile: its digest
        headers = {
            "Upload-Offset": str(offset),
            "Cache-Control": "no-store",
            **self._upload_headers(upload),
        }
        if upload.Size is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(upload.Size)
        metadata = ",".join(
            f"{key} {base64.b64encode(value.encode()).decode()}"
            for key, value in upload.MetaData.items()
        )
        if metadata:
            headers["Upload-Metadata"] = metadata
        if upload.IsPartial:
            headers["Upload-Concat"] = "partial"
        elif upload.IsFinal:
            base = f"{self.ctx.prefix}{self.path}"
            headers["Upload-Concat"] = "final;" + " ".join(base + p for p in upload.PartialUploads)
        return Response(200, headers=headers)

    def _checksum(self, request: Request) -> tuple[str, bytes] | None:
        header = request.header("upload-checksum")
        if header is None:
            return None
        algorithm, _, encoded = header.strip().partition(" ")
        if algorithm not in CHECKSUMS:
            raise BlobUploadInvalid(
                {"algorithm": algorithm[:20]}, message="unsupported checksum algorithm"
            )
        try:
            return algorithm, base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise DigestInvalid(message="Upload-Checksum is not base64") from None

    async def _patch(self, request: Request, upload: TusUpload) -> Response:
        if request.header("content-type") != _OFFSET_TYPE:
            raise Unsupported(message=f"Content-Type must be {_OFFSET_TYPE}", status=415)
        offset = _int_header(request, "upload-offset")
        if offset is None:
            raise BlobUploadInvalid(message="Upload-Offset required")
        if upload.IsFinal:
            raise Unsupported(message="a final upload takes no PATCH", status=403)
        length = _int_header(request, "upload-length")
        upload, size = await self.uploads.append(
            upload,
            request.stream(),
            offset=offset,
            length=length,
            checksum=self._checksum(request),
        )
        return Response(204, headers={"Upload-Offset": str(size), **self._upload_headers(upload)})
