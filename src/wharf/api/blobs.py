"""``/v2/<name>/blobs/<digest>``: GET, HEAD and DELETE."""

from __future__ import annotations

import re

from wharf.api.context import AppContext
from wharf.api.http import Request, Response
from wharf.errors import RangeInvalid
from wharf.reference import Digest

__all__ = ["delete_blob", "get_blob"]

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range of a single-range header; None to serve the whole blob."""
    match = _RANGE_RE.fullmatch(header.strip())
    if match is None:
        return None  # multiple or malformed ranges: RFC 9110 lets us ignore the header
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> RangeInvalid:
    return RangeInvalid(
        {"size": size},
        message="requested range not satisfiable",
        headers={"Content-Range": f"bytes */{size}"},
    )


async def get_blob(ctx: AppContext, request: Request, name: str, reference: str) -> Response:
    digest = Digest.parse(reference)
    repository = ctx.repository(name)
    info = await repository.blobs.stat(digest)
    etag = f'"{digest}"'
    headers = {
        "Docker-Content-Digest": str(digest),
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
        "Content-Type": "application/octet-stream",
    }
    if request.header("if-none-match") == etag:
        return Response(304, headers=headers)
    if not ctx.config.storage.redirect_disabled:
        url = await repository.blobs.redirect_url(digest, request.method)
        if url is not None:
            return Response(307, headers={**headers, "Location": url})
    start, end = 0, info.size - 1
    status = 200
    range_header = request.header("range")
    if range_header and info.size > 0:
        selected = parse_range(range_header, info.size)
        if selected is not None:
            start, end = selected
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    elif range_header and info.size == 0 and _RANGE_RE.fullmatch(range_header.strip()):
        raise _unsatisfiable(0)
    length = end - start + 1
    if request.method == "HEAD" or length == 0:
        return Response(status, headers={**headers, "Content-Length": str(length)})
    reader = await repository.blobs.open(digest, start)
    return Response(status, headers=headers, file=reader, content_length=length)


async def delete_blob(ctx: AppContext, request: Request, name: str, reference: str) -> Response:
    ctx.require_delete()
    digest = Digest.parse(reference)
    repository = ctx.repository(name)
    await repository.blobs.stat(digest)
    await repository.blobs.unlink(digest)
    return Response(202, headers={"Docker-Content-Digest": str(digest)})
