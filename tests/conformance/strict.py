"""The strict layer: checks where the Go suite is lenient and the distribution spec is not.

The faithful tests accept what the Go suite accepts. When ``Settings.strict`` is on (by default
when the suite starts wharf itself; ``OCI_STRICT`` switches it either way) they also call these
checks on the responses they already have, and the ``test_strict_*`` tests (marked
``strict``) make the requests the Go suite never makes. Every failure message starts with
``strict:`` and quotes the spec sentence it holds the registry to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.conformance.content import INDEX_MEDIA_TYPE, Blob, sha256_digest
from tests.conformance.fixtures import describe, error_codes

__all__ = [
    "check_accepted",
    "check_blob",
    "check_error",
    "check_location",
    "check_manifest",
    "check_manifest_created",
    "check_referrers",
    "check_upload_progress",
    "expected_artifact_type",
    "next_link",
]

SPEC_BLOB_GET = (
    "A GET request to an existing blob URL MUST provide the expected blob ... A successful "
    "response SHOULD contain the digest of the uploaded blob in the header "
    "`Docker-Content-Digest`. If present, the value of this header MUST be a digest matching "
    "that of the response body."
)
SPEC_MANIFEST_GET = (
    "A GET request to an existing manifest URL MUST provide the expected manifest ... The "
    "`Content-Type` header SHOULD match what the client pushed as the manifest's "
    "`Content-Type` ... A successful response SHOULD contain the digest of the uploaded blob "
    "in the header `Docker-Content-Digest`."
)
SPEC_HEAD = (
    "A HEAD request to an existing blob or manifest URL MUST return `200 OK`. A successful "
    "response SHOULD contain the digest of the uploaded blob in the header "
    "`Docker-Content-Digest`. A successful response SHOULD contain the size in bytes of the "
    "uploaded blob in the header `Content-Length`."
)
SPEC_MANIFEST_PUT = (
    "Upon a successful upload, the registry MUST return response code `201 Created`, and MUST "
    "have the following header: Location ... The Docker-Content-Digest header returns the "
    "canonical digest of the uploaded blob, and MUST be equal to the client provided digest."
)
SPEC_CHUNK = (
    "Each successful chunk upload MUST have a `202 Accepted` response code, and MUST have the "
    "following headers: Location: <location>, Range: 0-<end-of-range> ... The <end-of-range> "
    "value is the position of the last uploaded byte."
)
SPEC_LOCATION = (
    "Upon success, the response MUST have a code of `202 Accepted`, and MUST include the "
    "following header: Location: <location>"
)
SPEC_DELETE = "Upon success, the registry MUST respond with a `202 Accepted` code."
SPEC_ERRORS = (
    "The `code` field MUST be one of the following: ... BLOB_UNKNOWN (blob unknown to "
    "registry), BLOB_UPLOAD_UNKNOWN (blob upload unknown to registry), DIGEST_INVALID, "
    "MANIFEST_UNKNOWN (manifest unknown to registry), NAME_UNKNOWN (repository name not known "
    "to registry) ..."
)
SPEC_TAGS = (
    "If the list is not empty, the tags MUST be in lexical order (i.e. case-insensitive "
    "alphanumeric order)."
)
SPEC_TAGS_PAGE = (
    "The response to such a request MAY return fewer than <int> results, but only when the "
    "total number of tags attached to the repository is less than <int> or a `Link` header is "
    "provided. Otherwise, the response MUST include <int> results. ... When `n` is zero, this "
    "endpoint MUST return an empty list ... up to <int> tags *after* <tagname> will be "
    "returned."
)
SPEC_TAGS_LINK = (
    "A `Link` header MAY be included in the response when additional tags are available. If "
    "included, the `Link` header MUST be set according to RFC5988 with the Relation Type "
    '`rel="next"`. When `n` is zero, this endpoint MUST return an empty list, and MUST NOT '
    "include a `Link` header."
)
SPEC_REFERRERS = (
    "Upon success, the response MUST be a JSON body with an image index containing a list of "
    "descriptors. The `Content-Type` header MUST be set to "
    "`application/vnd.oci.image.index.v1+json`. Each descriptor is of an image manifest or index "
    "in the same <name> namespace with a `subject` field that specifies the value of <digest>. "
    "The descriptors MUST include an `artifactType` field that is set to the value of the "
    "`artifactType` in the image manifest or index, if present. If the `artifactType` is empty "
    "or missing in the image manifest, the value of `artifactType` MUST be set to the config "
    "descriptor `mediaType` value."
)
SPEC_REFERRERS_FILTER = (
    "If filtering is requested and applied, the response MUST include a header "
    "`OCI-Filters-Applied: artifactType` denoting that an `artifactType` filter was applied."
)

_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def _fail(message: str, response: httpx.Response, spec: str) -> str:
    return f"strict: {message}\n  response: {describe(response)}\n  spec: {spec}"


def check_error(response: httpx.Response, status: int, code: str) -> None:
    """``status`` with ``code`` first in an OCI error body."""
    assert response.status_code == status, _fail(f"expected {status} {code}", response, SPEC_ERRORS)
    try:
        codes = error_codes(response)
    except AssertionError as exc:
        message = f"expected {code} in an OCI error body"
        raise AssertionError(_fail(message, response, SPEC_ERRORS)) from exc
    assert codes[0] == code, _fail(
        f"expected error code {code}, got {codes}", response, SPEC_ERRORS
    )


def check_accepted(response: httpx.Response) -> None:
    """A successful delete: ``202 Accepted``."""
    assert response.status_code == 202, _fail("expected 202 for a delete", response, SPEC_DELETE)


def check_location(response: httpx.Response, spec: str = SPEC_LOCATION) -> None:
    assert response.headers.get("Location"), _fail("no Location header", response, spec)


def _check_digest_header(response: httpx.Response, digest: str, spec: str) -> None:
    header = response.headers.get("Docker-Content-Digest")
    assert header == digest, _fail(
        f"Docker-Content-Digest {header!r}, expected {digest}", response, spec
    )


def _check_content(
    response: httpx.Response, content: Blob, spec: str, *, head: bool, media_type: str | None
) -> None:
    """200 with exactly ``content`` (GET) or no body (HEAD), and the headers that describe it."""
    assert response.status_code == 200, _fail("expected 200", response, spec)
    if head:
        assert response.content == b"", _fail("HEAD response has a body", response, spec)
    else:
        assert response.content == content.content, _fail(
            f"body ({len(response.content)} bytes, {sha256_digest(response.content)}) is not "
            f"the pushed content ({len(content.content)} bytes, {content.digest})",
            response,
            spec,
        )
    length = response.headers.get("Content-Length")
    assert length == str(len(content.content)), _fail(
        f"Content-Length {length!r}, expected {len(content.content)}", response, spec
    )
    _check_digest_header(response, content.digest, spec)
    if media_type is not None:
        content_type = response.headers.get("Content-Type")
        assert content_type == media_type, _fail(
            f"Content-Type {content_type!r}, expected {media_type}", response, spec
        )


def check_blob(response: httpx.Response, blob: Blob, *, head: bool = False) -> None:
    """GET: exactly the pushed bytes; HEAD: no body. Both: its length and digest headers."""
    _check_content(response, blob, SPEC_HEAD if head else SPEC_BLOB_GET, head=head, media_type=None)


def check_manifest(
    response: httpx.Response, manifest: Blob, media_type: str, *, head: bool = False
) -> None:
    """As :func:`check_blob`, and the ``Content-Type`` is the media type it was pushed with."""
    spec = SPEC_HEAD if head else SPEC_MANIFEST_GET
    _check_content(response, manifest, spec, head=head, media_type=media_type)


def check_manifest_created(response: httpx.Response, manifest: Blob) -> None:
    """``201 Created`` with a Location and the manifest's digest."""
    assert response.status_code == 201, _fail("expected 201", response, SPEC_MANIFEST_PUT)
    check_location(response, SPEC_MANIFEST_PUT)
    _check_digest_header(response, manifest.digest, SPEC_MANIFEST_PUT)


def check_upload_progress(response: httpx.Response, received: int) -> None:
    """``202 Accepted`` after a chunk, with a Location and ``Range: 0-<last byte received>``."""
    assert response.status_code == 202, _fail("expected 202", response, SPEC_CHUNK)
    check_location(response, SPEC_CHUNK)
    expected = f"0-{received - 1}"
    header = response.headers.get("Range")
    assert header == expected, _fail(
        f"Range {header!r} after {received} bytes, expected {expected}", response, SPEC_CHUNK
    )


def expected_artifact_type(manifest: Blob) -> str | None:
    """A referrer descriptor's ``artifactType``: the manifest's, else its config's media type."""
    document: dict[str, Any] = json.loads(manifest.content)
    artifact_type = document.get("artifactType")
    if artifact_type:
        return str(artifact_type)
    config = document.get("config")
    return str(config["mediaType"]) if isinstance(config, dict) else None


def check_referrers(
    response: httpx.Response,
    manifests: list[dict[str, Any]],
    expected: Sequence[Blob],
    *,
    filtered: bool = False,
) -> None:
    """An OCI image index listing exactly ``expected``, each with the descriptor fields the
    spec requires; with ``filtered``, the ``OCI-Filters-Applied`` header too."""
    if filtered:
        header = response.headers.get("OCI-Filters-Applied")
        assert header == "artifactType", _fail(
            f"OCI-Filters-Applied {header!r}, expected 'artifactType'",
            response,
            SPEC_REFERRERS_FILTER,
        )
    content_type = response.headers.get("Content-Type")
    assert content_type == INDEX_MEDIA_TYPE, _fail(
        f"Content-Type {content_type!r}", response, SPEC_REFERRERS
    )
    body = response.json()
    assert body.get("schemaVersion") == 2, _fail("schemaVersion is not 2", response, SPEC_REFERRERS)
    assert body.get("mediaType") == INDEX_MEDIA_TYPE, _fail(
        f"mediaType {body.get('mediaType')!r}", response, SPEC_REFERRERS
    )
    got = sorted(str(descriptor.get("digest")) for descriptor in manifests)
    want = sorted(blob.digest for blob in expected)
    assert got == want, _fail(f"referrers {got}, expected exactly {want}", response, SPEC_REFERRERS)
    by_digest = {blob.digest: blob for blob in expected}
    for descriptor in manifests:
        blob = by_digest[str(descriptor.get("digest"))]
        document = json.loads(blob.content)
        want_fields = {
            "mediaType": document.get("mediaType"),
            "size": len(blob.content),
            "artifactType": expected_artifact_type(blob),
        }
        got_fields = {key: descriptor.get(key) for key in want_fields}
        assert got_fields == want_fields, _fail(
            f"descriptor of {blob.digest} has {got_fields}, expected {want_fields}",
            response,
            SPEC_REFERRERS,
        )


def next_link(response: httpx.Response) -> str | None:
    """The path and query of the ``Link: <...>; rel="next"`` header, or None."""
    match = _LINK_NEXT.search(response.headers.get("Link", ""))
    if match is None:
        return None
    parts = urlsplit(match.group(1))
    return parts.path + (f"?{parts.query}" if parts.query else "")
