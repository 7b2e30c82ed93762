"""Listings: ``/v2/<name>/tags/list``, ``/v2/_catalog`` and ``/v2/<name>/referrers/<digest>``."""

from __future__ import annotations

import bisect
import json
from urllib.parse import quote

from wharf.api.context import AppContext
from wharf.api.http import Request, Response
from wharf.api.response_cache import CachedResponse
from wharf.errors import PaginationNumberInvalid
from wharf.reference import Digest
from wharf.registry import media

__all__ = ["get_catalog", "get_referrers", "list_tags"]

_JSON = "application/json"


def _page_size(value: str | None, cap: int) -> int | None:
    """The ``n`` a client asked for, capped; None when it asked for none."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise PaginationNumberInvalid({"n": value[:40]})
    return min(int(value), cap)


def _paginate(
    items: list[str], limit: int | None, last: str | None
) -> tuple[list[str], str | None]:
    start = bisect.bisect_right(items, last) if last else 0
    if limit is None:
        return items[start:], None
    chunk = items[start : start + limit]
    more = start + limit < len(items) and limit > 0
    return chunk, (chunk[-1] if more and chunk else None)


def _link(ctx: AppContext, path: str, limit: int, last: str) -> str:
    return f'<{ctx.url(path)}?n={limit}&last={quote(last, safe="")}>; rel="next"'


async def list_tags(ctx: AppContext, request: Request, name: str, _: str) -> Response:
    # Not kept by change tokens: another writer of the storage may have added a tag. Kept
    # under the storage's own version of the tag names where it has one (the filesystem's
    # directory time), read before the answer is made: a change meanwhile leaves it unused.
    n, last = request.query_value("n"), request.query_value("last")
    repository = ctx.repository(name)
    mirrored = ctx.registry.mirrored(name)
    version = None if mirrored else await repository.tags.listing_version()
    key = (name, n, last)
    if version is not None and (kept := ctx.responses.tag_lists.get(key, version)) is not None:
        return kept
    limit = _page_size(n, max(ctx.config.catalog.max_entries, 10_000))
    next_last: str | None
    if limit is None or mirrored:
        # A mirror lists its upstream's tags.
        chunk, next_last = _paginate(await repository.tags.all(), limit, last)
    else:
        chunk, more = await repository.tags.page(limit, last or None)
        next_last = chunk[-1] if more and chunk else None
        if chunk and not ctx.config.storage.readonly:
            ctx.registry.served(repository.name)  # another writer may have made it
    headers = {"Content-Type": _JSON}
    if next_last is not None and limit is not None:
        headers["Link"] = _link(ctx, f"/v2/{name}/tags/list", limit, next_last)
    body = json.dumps({"name": name, "tags": chunk}, separators=(",", ":")).encode()
    if version is None:
        return Response(200, body, headers)
    answer = CachedResponse(200, body, headers)
    ctx.responses.tag_lists.put(key, version, answer, answer.size + len(name))
    return answer


async def get_catalog(ctx: AppContext, request: Request, _name: str, _ref: str) -> Response:
    cap = ctx.config.catalog.max_entries
    limit = _page_size(request.query_value("n"), cap)
    if limit is None:
        limit = cap
    chunk, more = await ctx.registry.catalog.page(limit, request.query_value("last") or None)
    next_last = chunk[-1] if more and chunk else None
    headers = {"Content-Type": _JSON}
    if next_last is not None:
        headers["Link"] = _link(ctx, "/v2/_catalog", limit, next_last)
    body = json.dumps({"repositories": chunk}, separators=(",", ":")).encode()
    return Response(200, body, headers)


async def get_referrers(ctx: AppContext, request: Request, name: str, reference: str) -> Response:
    repository = ctx.repository(name)
    subject = Digest.parse(reference)
    artifact_type = request.query_value("artifactType")
    descriptors = await repository.referrers.find(subject, artifact_type or None)
    headers = {"Content-Type": media.OCI_INDEX}
    if artifact_type:
        headers["OCI-Filters-Applied"] = "artifactType"
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": descriptors},
        separators=(",", ":"),
    ).encode()
    return Response(200, body, headers)
