"""``/v2/<name>/blobs/uploads/``: opening, feeding, completing and cancelling uploads."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import quote

from wharf.api.context import AppContext
from wharf.api.http import Request, Response
from wharf.api.upload_state import UploadState
from wharf.auth import Access
from wharf.errors import (
    BlobUploadInvalid,
    DigestInvalid,
    RangeInvalid,
    RegistryError,
)
from wharf.reference import Digest, RepositoryName
from wharf.registry.namespace import Repository

__all__ = ["cancel_upload", "complete_upload", "patch_upload", "start_upload", "upload_status"]

_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


async def _session_headers(ctx: AppContext, state: UploadState) -> dict[str, str]:
    """The headers naming a session and how much it holds, with a new signed ``_state``."""
    signed = quote((await ctx.upload_signer()).sign(state), safe="")
    return {
        "Location": ctx.url(f"/v2/{state.name}/blobs/uploads/{state.upload_id}?_state={signed}"),
        "Range": f"0-{max(state.offset - 1, 0)}",
        "Docker-Upload-UUID": state.upload_id,
    }


def _blob_created(ctx: AppContext, name: str, digest: Digest) -> Response:
    return Response(
        201,
        headers={
            "Location": ctx.url(f"/v2/{name}/blobs/{digest}"),
            "Docker-Content-Digest": str(digest),
        },
    )


async def _state(
    ctx: AppContext, repository: Repository, request: Request, upload_id: str
) -> UploadState:
    """The request's signed state; an id that names no session is unknown whatever it says."""
    repository.uploads.check_id(upload_id)
    name = repository.name.value
    signer = await ctx.upload_signer()
    try:
        return signer.verify(request.query_value("_state"), name, upload_id)
    except BlobUploadInvalid:
        await repository.uploads.require(upload_id)  # a session that is gone is unknown
        raise


def _digest_param(request: Request) -> Digest:
    value = request.query_value("digest")
    if not value:
        raise DigestInvalid(message="digest parameter missing")
    return Digest.parse(value)


async def _body_or_none(request: Request) -> AsyncIterator[bytes] | None:
    return None if request.content_length == 0 else request.stream()


async def _try_mount(ctx: AppContext, target: Repository, request: Request) -> Digest | None:
    mount = request.query_value("mount")
    if not mount:
        return None
    try:
        digest = Digest.parse(mount)
        source = request.query_value("from")
        if source is not None:
            if source == target.name.value:
                return None
            source_name = RepositoryName(source)
            if not await ctx.may(request, Access("repository", source_name.value, "pull")):
                return None
            await ctx.registry.repository(source_name).blobs.stat(digest)
        elif ctx.access is None:
            # Automatic mount: any blob the registry holds. Knowing a digest is no proof of
            # access, so with access control on a mount needs a source the caller may pull.
            await ctx.registry.blobs.stat(digest)
        else:
            return None
    except RegistryError:
        return None  # not mountable: the client gets an upload session instead
    await target.blobs.link(digest)
    return digest


async def start_upload(ctx: AppContext, request: Request, name: str, _: str) -> Response:
    ctx.require_writable()
    repository = ctx.repository(name)
    mounted = await _try_mount(ctx, repository, request)
    if mounted is not None:
        await request.drain()
        return _blob_created(ctx, name, mounted)
    if request.query_value("digest") is not None:
        digest = _digest_param(request)
        upload_id = await repository.uploads.create()
        info = await repository.uploads.complete(upload_id, digest, request.stream(), start=0)
        return _blob_created(ctx, name, info.digest)
    await request.drain()
    started = datetime.now(UTC).replace(microsecond=0)
    upload_id = await repository.uploads.create()
    state = UploadState(name, upload_id, 0, started)
    return Response(202, headers=await _session_headers(ctx, state))


async def upload_status(ctx: AppContext, request: Request, name: str, upload_id: str) -> Response:
    repository = ctx.repository(name)
    state = await _state(ctx, repository, request, upload_id)
    size = await repository.uploads.size(upload_id)
    now = UploadState(name, upload_id, size, state.started_at)
    return Response(204, headers=await _session_headers(ctx, now))


def _content_range(request: Request) -> tuple[int, int] | None:
    header = request.header("content-range")
    if header is None:
        return None
    match = _CONTENT_RANGE_RE.fullmatch(header.strip())
    if match is None:
        raise RangeInvalid({"content-range": header[:100]}, message="malformed Content-Range")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RangeInvalid({"content-range": header[:100]}, message="malformed Content-Range")
    return start, end


async def patch_upload(ctx: AppContext, request: Request, name: str, upload_id: str) -> Response:
    ctx.require_writable()
    repository = ctx.repository(name)
    state = await _state(ctx, repository, request, upload_id)
    content_range = _content_range(request)
    # Where the client believes the session ends: where its range starts, else where the
    # URL it was given said.
    start, length = state.offset, None
    if content_range is not None:
        start = content_range[0]
        length = content_range[1] - content_range[0] + 1
        declared = request.content_length
        if declared is not None and declared != length:
            raise RangeInvalid(
                {
                    "content-range": f"{content_range[0]}-{content_range[1]}",
                    "content-length": declared,
                },
                message="Content-Range does not match Content-Length",
            )
    size = await repository.uploads.append(
        upload_id,
        request.stream(),
        start=start,
        length=length,
        size_hint=request.content_length,
    )
    now = UploadState(name, upload_id, size, state.started_at)
    return Response(202, headers=await _session_headers(ctx, now))


async def complete_upload(ctx: AppContext, request: Request, name: str, upload_id: str) -> Response:
    ctx.require_writable()
    repository = ctx.repository(name)
    state = await _state(ctx, repository, request, upload_id)
    digest = _digest_param(request)
    content_range = _content_range(request)
    start = state.offset if content_range is None else content_range[0]
    body = await _body_or_none(request)
    info = await repository.uploads.complete(upload_id, digest, body, start=start)
    return _blob_created(ctx, name, info.digest)


async def cancel_upload(ctx: AppContext, request: Request, name: str, upload_id: str) -> Response:
    ctx.require_writable()
    repository = ctx.repository(name)
    await _state(ctx, repository, request, upload_id)
    await repository.uploads.cancel(upload_id)
    return Response(204)
