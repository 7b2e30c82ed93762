"""``/v2/<name>/manifests/<reference>``: GET, HEAD, PUT and DELETE."""

from __future__ import annotations

import json
from contextlib import suppress

from wharf.api.context import MANIFEST_MAX_BYTES, AppContext
from wharf.api.http import Request, Response, Send
from wharf.api.response_cache import CachedResponse, answer
from wharf.errors import ManifestUnknown, RegistryError, SizeInvalid, TagInvalid
from wharf.reference import Digest, Tag, parse_reference
from wharf.registry import media
from wharf.registry.manifests import StoredManifest
from wharf.registry.namespace import Repository

__all__ = ["MAX_PUSH_TAGS", "delete_manifest", "get_manifest", "put_manifest"]

#: ``tag`` parameters one push may carry. The distribution-spec asks for at least 10 and lets
#: a registry answer 414 beyond its limit; 50 tags of the longest kind (128 characters) keep
#: the request line under 8 KiB, which every HTTP server in front of wharf accepts.
MAX_PUSH_TAGS = 50

_OCI_TYPES = {media.OCI_MANIFEST, media.OCI_INDEX}
_LIST_TYPES = {media.OCI_INDEX, media.DOCKER_MANIFEST_LIST}


def _accepted(header: str | None) -> set[str] | None:
    """The media types an Accept header names; None when it accepts anything."""
    if not header:
        return None
    types = {part.split(";", 1)[0].strip().lower() for part in header.split(",")}
    if "*/*" in types:
        return None
    return types


async def _negotiate(
    repository: Repository, stored: StoredManifest, accepted: set[str] | None, by_tag: bool
) -> StoredManifest:
    """Distribution's rules: a list the client cannot read falls back to its linux/amd64
    image; OCI content a client does not accept is unknown to it."""
    if accepted is None or stored.media_type in accepted:
        return stored
    if by_tag and stored.media_type in _LIST_TYPES:
        fallback = await _default_platform(repository, stored)
        if fallback is not None and (fallback.media_type in accepted):
            return fallback
    if stored.media_type in _OCI_TYPES:
        kind = "index" if stored.media_type == media.OCI_INDEX else "manifest"
        raise ManifestUnknown(
            message=f"OCI {kind} found, but accept header does not support OCI {kind}s"
        )
    return stored


async def _default_platform(
    repository: Repository, stored: StoredManifest
) -> StoredManifest | None:
    with suppress(ValueError, RegistryError):
        for entry in json.loads(stored.body).get("manifests", []):
            platform = entry.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                return await repository.manifests.get(Digest.parse(entry["digest"]))
    return None


def _existing_reference(reference: str) -> Tag | Digest:
    """A reference to look up: a tag that cannot exist is simply unknown."""
    try:
        return parse_reference(reference)
    except TagInvalid:
        raise ManifestUnknown({"tag": reference[:200]}) from None


async def get_manifest(ctx: AppContext, request: Request, name: str, reference: str) -> Response:
    accept = request.header("accept")
    cache = ctx.responses.manifests
    if cache is None or ctx.registry.mirrored(name):
        response = await _manifest_response(ctx, name, reference, accept)
    else:
        response = await answer(
            cache,
            ctx.registry.cache.generations,
            (name, reference, accept),
            lambda: _manifest_response(ctx, name, reference, accept),
        )
    etag = request.header("if-none-match")
    if etag is not None and etag == response.headers["ETag"]:
        headers = {k: v for k, v in response.headers.items() if k != "Content-Length"}
        return Response(304, headers=headers)
    return response


async def _manifest_response(
    ctx: AppContext, name: str, reference: str, accept: str | None
) -> CachedResponse:
    """The 200 answer to a GET (a HEAD sends its headers): the same for every client that
    sends the same Accept header, while the repository does not change."""
    repository = ctx.repository(name)
    ref = _existing_reference(reference)
    stored = await repository.manifests.resolve(ref)
    stored = await _negotiate(repository, stored, _accepted(accept), isinstance(ref, Tag))
    headers = {
        "Content-Type": stored.media_type,
        "Docker-Content-Digest": str(stored.digest),
        "ETag": f'"{stored.digest}"',
    }
    return CachedResponse(200, stored.body, headers)


def _tag_parameters(request: Request, reference: Tag | Digest) -> list[Tag]:
    """The tags a push by digest names with ``?tag=`` (the distribution-spec's tags on push),
    each checked before anything is stored: one bad tag refuses the whole request."""
    values = request.query.get("tag")
    if not values:
        return []
    if not isinstance(reference, Digest):
        raise TagInvalid(
            {"reference": reference.value}, message="tag parameters need a digest reference"
        )
    if len(values) > MAX_PUSH_TAGS:
        raise SizeInvalid(
            {"tags": len(values), "limit": MAX_PUSH_TAGS},
            message=f"at most {MAX_PUSH_TAGS} tag parameters per push",
            status=414,
        )
    return list(dict.fromkeys(Tag(value) for value in values))


async def put_manifest(ctx: AppContext, request: Request, name: str, reference: str) -> Response:
    ctx.require_writable()
    repository = ctx.repository(name)
    ref = parse_reference(reference)
    tags = _tag_parameters(request, ref)
    body = await request.body(MANIFEST_MAX_BYTES)
    manifest = await repository.manifests.put(
        body, request.header("content-type"), ref, tags=tags, guard=ctx.write_guard
    )
    headers = {
        "Location": ctx.url(f"/v2/{name}/manifests/{manifest.digest}"),
        "Docker-Content-Digest": str(manifest.digest),
    }
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject.digest)
    return _Pushed(headers, tags)


class _Pushed(Response):
    """201 to a manifest push, with one ``OCI-Tag`` field per tag it pointed at the manifest:
    the distribution-spec's confirmation, and a client's sign that tags on push work here.
    (RFC 9110 lets the values be joined in one field; some clients compare each field.)"""

    __slots__ = ("tags",)

    def __init__(self, headers: dict[str, str], tags: list[Tag]) -> None:
        super().__init__(201, headers=headers)
        self.tags = [(b"OCI-Tag", tag.value.encode("ascii")) for tag in tags]

    async def send(
        self,
        send: Send,
        *,
        head: bool,
        extra: list[tuple[bytes, bytes]],
        zero_copy: bool = False,
    ) -> None:
        tagged = [*self.tags, *extra] if self.tags else extra
        await super().send(send, head=head, extra=tagged, zero_copy=zero_copy)


async def delete_manifest(ctx: AppContext, request: Request, name: str, reference: str) -> Response:
    ctx.require_delete()
    repository = ctx.repository(name)
    ref = _existing_reference(reference)
    if isinstance(ref, Tag):
        await repository.tags.untag(ref)
    else:
        await repository.manifests.delete(ref)
    return Response(202)
