"""The distribution-spec main branch's conformance runner (``conformance/run.go``, ``api.go``),
its cases for tags on push, sha512 and sparse data ported onto every storage driver.

What the runner checks on every request is checked here too: each ``Location`` it follows
answers (a blob's with its bytes, a manifest's with exact ``Content-Type`` and
``Content-Length``), HEAD answers have empty bodies, ``Docker-Content-Digest`` is the pushed
digest, and a delete is visible to a HEAD at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, error_codes
from tests.support.urls import with_query
from wharf.api.app import create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.config.validation import PlatformConfig, ValidationConfig

pytestmark = pytest.mark.asyncio

OCTETS = {"Content-Type": "application/octet-stream"}
ACCEPT = {"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"}
ARTIFACT = "application/vnd.example.conformance.one"
#: The runner's chunkMin: chunks of at least 1 KiB, blobs spanning three of them.
CHUNK = 1024
AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64"}


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def desc(media_type: str, data: bytes, algorithm: str = "sha256", **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(data, algorithm), "size": len(data), **extra}


@pytest.fixture
async def connect(
    driver_name: str, storage_parameters: dict[str, Any]
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Clients of apps on the test's storage, each with its ``validation`` settings."""
    apps = []
    clients: list[httpx.AsyncClient] = []
    driver = driver_name.split("-")[0]

    def factory(validation: ValidationConfig | None = None) -> httpx.AsyncClient:
        config = Config(
            storage=StorageConfig(
                driver=driver,
                parameters=storage_parameters,
                delete_enabled=True,
                redirect_disabled=driver != "filesystem" and driver != "inmemory",
            ),
            http=HTTPConfig(secret="test-secret"),
            validation=validation or ValidationConfig(),
        )
        app = create_app(config)
        apps.append(app)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w")
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()
    for app in apps:
        await app.aclose()


@pytest.fixture
def client(connect: Callable[..., httpx.AsyncClient]) -> httpx.AsyncClient:
    return connect()


# -- the runner's checks of every answer ---------------------------------------------------


async def follow_blob(client: httpx.AsyncClient, response: httpx.Response, data: bytes) -> None:
    """api.go BlobVerifyLocation: the Location of a finished upload is a pullable blob."""
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest(data, _algorithm(response))
    pulled = await client.get(response.headers["Location"])
    assert pulled.status_code == 200, pulled.text
    assert pulled.content == data


def _algorithm(response: httpx.Response) -> str:
    return response.headers["Docker-Content-Digest"].split(":", 1)[0]


async def head_blob(client: httpx.AsyncClient, name: str, blob: bytes, ref: str) -> None:
    head = await client.head(f"/v2/{name}/blobs/{ref}")
    assert head.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(blob))
    assert head.headers["Docker-Content-Digest"] == ref
    got = await client.get(f"/v2/{name}/blobs/{ref}")
    assert got.content == blob
    assert got.headers["Content-Length"] == str(len(blob))
    assert got.headers["Docker-Content-Digest"] == ref


async def delete_blob(client: httpx.AsyncClient, name: str, ref: str) -> None:
    assert (await client.delete(f"/v2/{name}/blobs/{ref}")).status_code == 202
    assert (await client.head(f"/v2/{name}/blobs/{ref}")).status_code == 404  # at once


async def check_manifest(
    client: httpx.AsyncClient, name: str, reference: str, body: bytes, manifest_digest: str
) -> None:
    """api.go ManifestGetExists and ManifestHeadExists: exact type, length, digest."""
    media_type = json.loads(body)["mediaType"]
    got = await client.get(f"/v2/{name}/manifests/{reference}", headers=ACCEPT)
    assert got.status_code == 200, got.text
    assert got.content == body
    assert got.headers["Content-Type"] == media_type
    assert got.headers["Content-Length"] == str(len(body))
    assert got.headers["Docker-Content-Digest"] == manifest_digest
    head = await client.head(f"/v2/{name}/manifests/{reference}", headers=ACCEPT)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Type"] == media_type
    assert head.headers["Content-Length"] == str(len(body))
    assert head.headers["Docker-Content-Digest"] == manifest_digest


async def put_manifest(
    client: httpx.AsyncClient,
    name: str,
    reference: str,
    body: bytes,
    tags: list[str] | None = None,
) -> httpx.Response:
    """api.go ManifestPut: 201, the digest, and a Location that answers with the manifest."""
    media_type = json.loads(body)["mediaType"]
    response = await client.put(
        f"/v2/{name}/manifests/{reference}",
        params=[("tag", tag) for tag in tags or []],
        content=body,
        headers={"Content-Type": media_type},
    )
    if response.status_code != 201:
        return response
    algorithm = reference.split(":", 1)[0] if ":" in reference else "sha256"
    manifest_digest = digest(body, algorithm)
    assert response.headers["Docker-Content-Digest"] == manifest_digest
    located = await client.get(response.headers["Location"], headers=ACCEPT)
    assert located.status_code == 200
    assert located.content == body
    assert located.headers["Content-Type"] == media_type
    assert located.headers["Content-Length"] == str(len(body))
    return response


def oci_tags(response: httpx.Response) -> list[str]:
    """The tags an answer confirms, as the runner reads OCI-Tag: any number of fields, each
    a comma-separated list."""
    values = response.headers.get_list("OCI-Tag")
    return [tag.strip() for value in values for tag in value.split(",")]


async def tag_list(client: httpx.AsyncClient, name: str, **params: str) -> list[str]:
    response = await client.get(f"/v2/{name}/tags/list", params=params)
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return list(response.json()["tags"] or [])


async def delete_manifest(client: httpx.AsyncClient, name: str, reference: str) -> None:
    """Tag or manifest: 202, then a HEAD sees it gone at once."""
    assert (await client.delete(f"/v2/{name}/manifests/{reference}")).status_code == 202
    assert (await client.head(f"/v2/{name}/manifests/{reference}", headers=ACCEPT)).status_code == (
        404
    )


# -- content as the runner generates it ----------------------------------------------------


class Content:
    """Blobs and manifests of one data type (run.go's testData), with one digest algorithm
    for every descriptor (genWithAlgo)."""

    def __init__(self, seed: str, algorithm: str = "sha256") -> None:
        self.seed = seed
        self.algorithm = algorithm
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}  # in push order

    def blob(self, data: bytes) -> str:
        ref = digest(data, self.algorithm)
        self.blobs[ref] = data
        return ref

    def image(
        self,
        platform: dict[str, str] = AMD64,
        layers: int = 2,
        *,
        subject: dict[str, Any] | None = None,
        artifact_type: str | None = None,
    ) -> tuple[str, bytes]:
        config = json.dumps({**platform, "seed": self.seed, "n": len(self.manifests)}).encode()
        self.blob(config)
        layer_data = [
            f"{self.seed} layer {len(self.manifests)}.{i}".encode() * 40 for i in range(layers)
        ]
        for layer in layer_data:
            self.blob(layer)
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": desc(OCI_CONFIG, config, self.algorithm),
            "layers": [desc(OCI_LAYER, layer, self.algorithm) for layer in layer_data],
        }
        if artifact_type is not None:
            document["artifactType"] = artifact_type
            document["config"] = desc(OCI_EMPTY, self._empty(), self.algorithm)
        if subject is not None:
            document["subject"] = subject
        body = json.dumps(document).encode()
        ref = digest(body, self.algorithm)
        self.manifests[ref] = body
        return ref, body

    def _empty(self) -> bytes:
        self.blob(b"{}")
        return b"{}"

    def index(self, children: list[tuple[dict[str, str], str, bytes]]) -> tuple[str, bytes]:
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                desc(OCI_MANIFEST, body, self.algorithm, platform=platform)
                for platform, _, body in children
            ],
        }
        body = json.dumps(document).encode()
        ref = digest(body, self.algorithm)
        self.manifests[ref] = body
        return ref, body

    def multi_platform(self) -> tuple[str, bytes]:
        """genIndexFull: an image per platform and the index naming them."""
        children = []
        for platform in (AMD64, ARM64):
            ref, body = self.image(platform)
            children.append((platform, ref, body))
        return self.index(children)


async def push_blobs(client: httpx.AsyncClient, name: str, content: Content) -> None:
    """Each blob by a single POST (every method is the upload tests' business)."""
    for ref, data in content.blobs.items():
        response = await client.post(
            f"/v2/{name}/blobs/uploads/", params={"digest": ref}, content=data, headers=OCTETS
        )
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == ref


# -- blobs: every upload method, with each digest algorithm --------------------------------


def _blob(algorithm: str, label: str, size: int = 512) -> tuple[bytes, str]:
    data = (hashlib.sha256(label.encode()).digest() * (size // 32 + 1))[:size]
    return data, digest(data, algorithm)


async def _post_only(client: httpx.AsyncClient, name: str, data: bytes, ref: str) -> httpx.Response:
    return await client.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": ref}, content=data, headers=OCTETS
    )


async def _post_put(client: httpx.AsyncClient, name: str, data: bytes, ref: str) -> httpx.Response:
    start = await client.post(f"/v2/{name}/blobs/uploads/")
    assert start.status_code == 202
    return await client.put(
        with_query(start.headers["Location"], digest=ref), content=data, headers=OCTETS
    )


async def _stream(client: httpx.AsyncClient, name: str, data: bytes, ref: str) -> httpx.Response:
    start = await client.post(f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"})
    assert start.status_code == 202
    patch = await client.patch(start.headers["Location"], content=data, headers=OCTETS)
    assert patch.status_code == 202, patch.text
    return await client.put(with_query(patch.headers["Location"], digest=ref), headers=OCTETS)


async def _chunked(
    client: httpx.AsyncClient,
    name: str,
    data: bytes,
    ref: str,
    *,
    put_last: bool = False,
    out_of_order: bool = False,
) -> httpx.Response:
    """api.go BlobPatchChunked: three chunks of at least the minimum length, the last one by
    PATCH or in the closing PUT; out of order, a wrong chunk first each time (416), then
    a GET of the session to learn its range."""
    start = await client.post(f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"})
    assert start.status_code == 202
    size = max(len(data) // 3 + 1, CHUNK, int(start.headers.get("OCI-Chunk-Min-Length", 0)))
    location = start.headers["Location"]
    last = -1
    while last < len(data) - 1:
        if out_of_order:
            bad = last + 1 + size if last + 1 + size < len(data) else 0
            bad_end = min(bad + size, len(data)) - 1
            is_last = bad_end == len(data) - 1
            method = "PUT" if put_last and is_last else "PATCH"
            url = with_query(location, digest=ref) if method == "PUT" else location
            refused = await client.request(
                method,
                url,
                content=data[bad : bad_end + 1],
                headers={**OCTETS, "Content-Range": f"{bad}-{bad_end}"},
            )
            assert refused.status_code == 416, refused.text
            location = refused.headers.get("Location", location)
            status = await client.get(location)
            assert status.status_code == 204
            assert status.content == b""
            location = status.headers["Location"]
            reported = status.headers["Range"]
            assert reported.startswith("0-")
            if last >= 0:
                assert reported == f"0-{last}"
        begin = last + 1
        last = min(begin + size, len(data)) - 1
        chunk = data[begin : last + 1]
        headers = {**OCTETS, "Content-Range": f"{begin}-{last}"}
        if put_last and last == len(data) - 1:
            return await client.put(
                with_query(location, digest=ref), content=chunk, headers=headers
            )
        patch = await client.patch(location, content=chunk, headers=headers)
        assert patch.status_code == 202, patch.text
        assert patch.headers["Range"] == f"0-{last}"
        location = patch.headers["Location"]
    return await client.put(with_query(location, digest=ref), headers=OCTETS)


UPLOADS: dict[str, Callable[..., Any]] = {
    "post only": _post_only,
    "post+put": _post_put,
    "stream": _stream,
    "chunked": _chunked,
    "chunked and put chunk": lambda *a: _chunked(*a, put_last=True),
    "chunked out-of-order": lambda *a: _chunked(*a, out_of_order=True),
    "chunked out-of-order and put chunk": lambda *a: _chunked(*a, put_last=True, out_of_order=True),
}


def _algorithms(driver_name: str) -> list[str]:
    """sha512 on every driver; sha256 (which tests/api/test_uploads.py puts through every
    method on every driver) here on the embedded ones, to keep the suite's time."""
    return ["sha256", "sha512"] if driver_name in ("inmemory", "filesystem") else ["sha512"]


async def test_every_upload_method(client: httpx.AsyncClient, driver_name: str) -> None:
    """run.go TestBlobAPIs: each method pushes, HEADs, pulls and deletes a blob; a blob
    spanning three chunks for the chunked ones; the well-known empty and ``{}`` blobs."""
    for algorithm in _algorithms(driver_name):
        await _upload_methods(client, algorithm)


async def _upload_methods(client: httpx.AsyncClient, algorithm: str) -> None:
    name = f"conformance/{algorithm}"
    for method, upload in UPLOADS.items():
        size = CHUNK * 3 - 5 if method.startswith("chunked") else 512
        data, ref = _blob(algorithm, method, size)
        response = await upload(client, name, data, ref)
        await follow_blob(client, response, data)
        assert response.headers["Docker-Content-Digest"] == ref, method
        await head_blob(client, name, data, ref)
        await delete_blob(client, name, ref)
    for data in (b"", b"{}"):
        ref = digest(data, algorithm)
        await follow_blob(client, await _post_put(client, name, data, ref), data)
        await head_blob(client, name, data, ref)
        await delete_blob(client, name, ref)


async def test_bad_digests_mounts_and_cancel(client: httpx.AsyncClient, driver_name: str) -> None:
    """The runner's bad-digest cases (the bytes corrupted after the digest was taken) refuse
    with 400 and store nothing; a mount from another repository, anonymous or of a blob that
    is not there; a cancelled session."""
    for algorithm in _algorithms(driver_name):
        await _bad_digests_mounts_and_cancel(client, algorithm)


async def _bad_digests_mounts_and_cancel(client: httpx.AsyncClient, algorithm: str) -> None:
    name, other = f"conformance/{algorithm}", f"conformance/{algorithm}-2"
    for method in ("post only", "post+put", "stream", "chunked", "chunked and put chunk"):
        data, ref = _blob(algorithm, "bad " + method, CHUNK * 3 - 5)
        response = await UPLOADS[method](client, name, data + b"oh no", ref)
        assert response.status_code == 400, (method, response.text)
        assert error_codes(response) == ["DIGEST_INVALID"], method
        assert (await client.head(f"/v2/{name}/blobs/{ref}")).status_code == 404
    data, ref = _blob(algorithm, "mounted")
    await follow_blob(client, await _post_only(client, other, data, ref), data)
    for params in ({"mount": ref, "from": other}, {"mount": ref}):
        mounted = await client.post(f"/v2/{name}/blobs/uploads/", params=params)
        await follow_blob(client, mounted, data)
        assert mounted.headers["Docker-Content-Digest"] == ref
        await head_blob(client, name, data, ref)
        await delete_blob(client, name, ref)
    await delete_blob(client, other, ref)
    missing = await client.post(f"/v2/{name}/blobs/uploads/", params={"mount": ref, "from": other})
    assert missing.status_code == 202  # falls back to an upload session
    cancel = await client.delete(missing.headers["Location"])
    assert cancel.status_code == 204
    assert (await client.get(missing.headers["Location"])).status_code == 404


# -- manifests and indexes by digest, with and without tag parameters ----------------------


@pytest.mark.parametrize(
    ("algorithm", "tag_param"),
    [("sha512", False), ("sha256", True), ("sha512", True)],
    ids=["sha512", "tag-param-sha256", "tag-param-sha512"],
)
async def test_index_pushed_by_digest(
    client: httpx.AsyncClient, driver_name: str, tmp_path: Path, algorithm: str, tag_param: bool
) -> None:
    """run.go's sha512 and tag-param-* data: an index and its images pushed by digest (each
    with ``tag-param-<n>`` tags, the index with one more); every answer, listing and delete
    speaks the pushed digest; Distribution's layout holds it under its algorithm."""
    name = f"conformance/{'tags' if tag_param else 'digest'}-{algorithm}"
    content = Content(f"{algorithm}-{tag_param}", algorithm)
    index_ref, _ = content.multi_platform()
    tags: dict[str, str] = {}
    if tag_param:
        prefix = f"tag-param-{algorithm}"
        tags = {f"{prefix}-{i}": ref for i, ref in enumerate(content.manifests)}
        tags[prefix] = index_ref
    await push_blobs(client, name, content)
    for ref, body in content.manifests.items():
        wanted = sorted(tag for tag, target in tags.items() if target == ref)
        response = await put_manifest(client, name, ref, body, wanted)
        assert response.status_code == 201, response.text
        assert sorted(oci_tags(response)) == wanted
        assert sorted(response.headers.get_list("OCI-Tag")) == wanted  # a field per tag
    assert sorted(await tag_list(client, name)) == sorted(tags)
    for tag, ref in tags.items():
        await check_manifest(client, name, tag, content.manifests[ref], ref)
    for ref, body in content.manifests.items():
        await check_manifest(client, name, ref, body, ref)
    if len(tags) >= 2:  # run.go TestList: ``last`` halves the sorted list
        ordered = sorted(tags)
        after = await tag_list(client, name, last=ordered[len(ordered) // 2 - 1])
        assert after == ordered[len(ordered) // 2 :]
    if driver_name == "filesystem":
        _check_layout(tmp_path / "data", name, algorithm, content, tags)
    # run.go TestDelete: tags, then manifests (the index first), then blobs.
    for tag in tags:
        await delete_manifest(client, name, tag)
    assert await tag_list(client, name) == []
    for ref in reversed(content.manifests):
        await delete_manifest(client, name, ref)
    for ref in content.blobs:
        await delete_blob(client, name, ref)


def _check_layout(
    root: Path, name: str, algorithm: str, content: Content, tags: dict[str, str]
) -> None:
    """Where Distribution keeps each piece: blobs, revisions and tag indexes under the
    digest's algorithm, and links naming the whole digest."""
    v2 = root / "docker/registry/v2"
    repository = v2 / "repositories" / name
    for ref in [*content.blobs, *content.manifests]:
        hex_part = ref.split(":", 1)[1]
        assert (v2 / "blobs" / algorithm / hex_part[:2] / hex_part / "data").is_file(), ref
    for ref in content.blobs:
        link = repository / "_layers" / algorithm / ref.split(":", 1)[1] / "link"
        assert link.read_text() == ref
    for ref in content.manifests:
        link = repository / "_manifests/revisions" / algorithm / ref.split(":", 1)[1] / "link"
        assert link.read_text() == ref
    for tag, ref in tags.items():
        tag_dir = repository / "_manifests/tags" / tag
        assert (tag_dir / "current/link").read_text() == ref
        index = tag_dir / "index" / algorithm / ref.split(":", 1)[1] / "link"
        assert index.read_text() == ref
    assert not (v2 / "blobs" / ("sha256" if algorithm == "sha512" else "sha512")).exists()


async def test_referrers_of_a_sha512_subject(client: httpx.AsyncClient) -> None:
    """run.go's artifacts-with-subject data in sha512: OCI-Subject on the push, the
    referrers listing (filtered too) speaks sha512, a deleted referrer leaves it."""
    name = "conformance/referrers-sha512"
    content = Content("referrers", "sha512")
    subject_ref, subject_body = content.image()
    subject = desc(OCI_MANIFEST, subject_body, "sha512")
    artifacts = [
        content.image(layers=1, subject=subject, artifact_type=artifact_type)
        for artifact_type in (ARTIFACT, ARTIFACT + ".two")
    ]
    await push_blobs(client, name, content)
    for ref, body in content.manifests.items():
        tags = ["tagged-artifact"] if ref == artifacts[0][0] else []
        response = await put_manifest(client, name, ref, body, tags)
        assert response.status_code == 201, response.text
        if ref != subject_ref:
            assert response.headers["OCI-Subject"] == subject_ref
    listing = await client.get(f"/v2/{name}/referrers/{subject_ref}")
    assert listing.status_code == 200
    assert listing.headers["Content-Type"] == OCI_INDEX
    document = listing.json()
    assert (document["schemaVersion"], document["mediaType"]) == (2, OCI_INDEX)
    expected = {
        ref: {
            "mediaType": OCI_MANIFEST,
            "digest": ref,
            "size": len(body),
            "artifactType": json.loads(body)["artifactType"],
        }
        for ref, body in artifacts
    }
    found = {entry["digest"]: entry for entry in document["manifests"]}
    assert {ref: {k: found[ref][k] for k in expected[ref]} for ref in found} == expected
    filtered = await client.get(
        f"/v2/{name}/referrers/{subject_ref}", params={"artifactType": ARTIFACT}
    )
    assert "artifactType" in filtered.headers["OCI-Filters-Applied"].split(",")
    assert [entry["digest"] for entry in filtered.json()["manifests"]] == [artifacts[0][0]]
    await check_manifest(client, name, "tagged-artifact", artifacts[0][1], artifacts[0][0])
    await delete_manifest(client, name, artifacts[0][0])
    assert await tag_list(client, name) == []
    left = (await client.get(f"/v2/{name}/referrers/{subject_ref}")).json()["manifests"]
    assert [entry["digest"] for entry in left] == [artifacts[1][0]]


async def test_empty_repository_and_missing_manifests(client: httpx.AsyncClient) -> None:
    """run.go TestEmpty and TestManifestErrors: an empty repository lists no tags and no
    referrers (of a subject in either algorithm); a missing manifest is 404; a digest that
    is not one is refused on push and unknown on pull; a body that does not match its digest
    (bad-digest-image) is refused."""
    name = "conformance/empty"
    assert await tag_list(client, name) == []
    for algorithm in ("sha256", "sha512"):
        listing = await client.get(f"/v2/{name}/referrers/{digest(b'random', algorithm)}")
        assert listing.status_code == 200
        assert listing.json()["manifests"] == []
        missing = await client.get(f"/v2/{name}/manifests/{digest(b'absent', algorithm)}")
        assert missing.status_code == 404
    assert (
        await client.get(f"/v2/{name}/manifests/missing-tag", headers=ACCEPT)
    ).status_code == 404
    content = Content("bad digest")
    ref, body = content.image(layers=1)
    await push_blobs(client, name, content)
    bad = await put_manifest(client, name, "sha256:baddigeststring", body)
    assert bad.status_code == 400
    got = await client.get(f"/v2/{name}/manifests/sha256:baddigeststring", headers=ACCEPT)
    assert got.status_code in (400, 404)
    mismatched = await put_manifest(client, name, ref, body + b"  ")
    assert mismatched.status_code == 400
    assert error_codes(mismatched) == ["DIGEST_INVALID"]
    assert (await client.head(f"/v2/{name}/manifests/{ref}")).status_code == 404


# -- tag parameters: all or nothing ----------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_a_bad_tag_parameter_refuses_the_whole_push(
    client: httpx.AsyncClient, algorithm: str
) -> None:
    name = f"conformance/refused-{algorithm}"
    content = Content("refused", algorithm)
    ref, body = content.image(layers=1)
    await push_blobs(client, name, content)
    refusals: list[tuple[str, list[str], int, str]] = [
        (ref, ["good", "bad tag!"], 400, "TAG_INVALID"),
        (ref, ["good", ""], 400, "TAG_INVALID"),
        (ref, ["good", "x" * 129], 400, "TAG_INVALID"),
        (ref, ["good", ".dot-first"], 400, "TAG_INVALID"),
        (ref, [f"t{i}" for i in range(51)], 414, "SIZE_INVALID"),
        ("latest", ["good"], 400, "TAG_INVALID"),  # tag parameters need a push by digest
    ]
    for reference, tags, status, code in refusals:
        response = await put_manifest(client, name, reference, body, tags)
        assert response.status_code == status, (tags[:3], response.text)
        assert error_codes(response) == [code]
        assert "OCI-Tag" not in response.headers
    assert (await client.head(f"/v2/{name}/manifests/{ref}")).status_code == 404
    assert (await client.head(f"/v2/{name}/manifests/latest")).status_code == 404
    assert await tag_list(client, name) == []
    # Absent content refuses it too, before any tag moves.
    missing = Content("missing", algorithm)
    missing_ref, missing_body = missing.image(layers=1)
    response = await put_manifest(client, name, missing_ref, missing_body, ["good"])
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert await tag_list(client, name) == []
    # The most a push may carry (50 parameters), a repeated tag confirmed once.
    tags = [f"t{i}" for i in range(49)]
    response = await put_manifest(client, name, ref, body, [*tags, "t0"])
    assert response.status_code == 201, response.text
    assert sorted(oci_tags(response)) == sorted(tags)
    assert sorted(await tag_list(client, name)) == sorted(tags)
    await check_manifest(client, name, "t48", body, ref)


async def test_tag_parameters_move_existing_tags(client: httpx.AsyncClient) -> None:
    """A tag parameter moves a tag as a push by tag does; the previous manifest stays."""
    name = "conformance/move"
    content = Content("move", "sha512")
    first, first_body = content.image(layers=1)
    second, second_body = content.image(layers=1)
    await push_blobs(client, name, content)
    assert (
        await put_manifest(client, name, first, first_body, ["v1", "latest"])
    ).status_code == 201
    moved = await put_manifest(client, name, second, second_body, ["latest", "v2"])
    assert moved.status_code == 201
    await check_manifest(client, name, "latest", second_body, second)
    await check_manifest(client, name, "v1", first_body, first)
    await delete_manifest(client, name, second)  # takes its tags along
    assert sorted(await tag_list(client, name)) == ["v1"]


# -- sparse data: the runner's sparse-image and sparse-index ---------------------------------


def _sparse(content: Content, algorithm: str = "sha256") -> dict[str, tuple[str, bytes]]:
    """run.go's sparse data, and the cases around it: an image missing a layer, one
    missing its config, and indexes naming an absent linux/arm64 (or linux/amd64) image."""
    image_ref, image_body = content.image(layers=2)
    absent = Content("absent", algorithm)
    arm_ref, arm_body = absent.image(ARM64, layers=1)
    amd_ref, amd_body = absent.image(AMD64, layers=1)
    sparse_image = content.image(layers=2)
    layer = json.loads(sparse_image[1])["layers"][0]["digest"]
    del content.blobs[layer]  # the runner removes the first layer it finds
    no_config = content.image(layers=1)
    config = json.loads(no_config[1])["config"]["digest"]
    del content.blobs[config]
    sparse_index = content.index([(AMD64, image_ref, image_body), (ARM64, arm_ref, arm_body)])
    amd_absent = content.index([(AMD64, amd_ref, amd_body), (ARM64, arm_ref, arm_body)])
    return {
        "image": (image_ref, image_body),
        "sparse-image": sparse_image,
        "no-config": no_config,
        "sparse-index": sparse_index,
        "amd64-absent": amd_absent,
    }


VALIDATION = {
    "default": ValidationConfig(),
    "platforms none": ValidationConfig(index_platforms="none"),
    "platforms list": ValidationConfig(
        index_platforms="list", platform_list=(PlatformConfig("linux", "amd64"),)
    ),
    "layers none": ValidationConfig(image_layers="none"),
}
#: What each configuration accepts of _sparse's manifests (the image always).
ACCEPTS = {
    "default": set(),
    "platforms none": {"sparse-index", "amd64-absent"},
    "platforms list": {"sparse-index"},
    "layers none": {"sparse-image"},
}


@pytest.mark.parametrize("setting", list(VALIDATION))
async def test_sparse_manifests(connect: Callable[..., httpx.AsyncClient], setting: str) -> None:
    """``validation`` off (the default) refuses every sparse manifest with
    MANIFEST_BLOB_UNKNOWN; ``platforms: none`` accepts an index whatever it names, ``list``
    checks only the listed platforms, ``images.layers: none`` accepts an image whose layers
    are absent but never one whose config is. What was accepted pulls, tags, lists and
    deletes like any manifest; what is absent stays unknown."""
    client = connect(VALIDATION[setting])
    name = "conformance/sparse"
    content = Content(setting)
    cases = _sparse(content)
    await push_blobs(client, name, content)
    for case, (ref, body) in cases.items():
        response = await put_manifest(client, name, ref, body, [case])
        if case == "image" or case in ACCEPTS[setting]:
            assert response.status_code == 201, (case, response.text)
            assert oci_tags(response) == [case]
            await check_manifest(client, name, case, body, ref)
        else:
            assert response.status_code == 400, (case, response.text)
            assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
            assert (await client.head(f"/v2/{name}/manifests/{ref}")).status_code == 404
    accepted = sorted({"image"} | ACCEPTS[setting])
    assert sorted(await tag_list(client, name)) == accepted
    absent_child = json.loads(cases["sparse-index"][1])["manifests"][1]["digest"]
    assert (
        await client.get(f"/v2/{name}/manifests/{absent_child}", headers=ACCEPT)
    ).status_code == 404
    absent_layer = json.loads(cases["sparse-image"][1])["layers"][0]["digest"]
    assert (await client.get(f"/v2/{name}/blobs/{absent_layer}")).status_code == 404
    for case in accepted[::-1]:
        await delete_manifest(client, name, cases[case][0])
    assert await tag_list(client, name) == []


async def test_sparse_sha512_index_with_tag_parameters(
    connect: Callable[..., httpx.AsyncClient],
) -> None:
    """Sparse and sha512 together: an index whose arm64 image was never pushed, by its
    sha512 digest with two tags, under ``platforms: list``."""
    client = connect(VALIDATION["platforms list"])
    name = "conformance/sparse-sha512"
    content = Content("sparse sha512", "sha512")
    cases = _sparse(content, "sha512")
    await push_blobs(client, name, content)
    ref, body = cases["image"]
    assert (await put_manifest(client, name, ref, body)).status_code == 201
    index_ref, index_body = cases["sparse-index"]
    response = await put_manifest(client, name, index_ref, index_body, ["a", "b"])
    assert response.status_code == 201, response.text
    assert sorted(oci_tags(response)) == ["a", "b"]
    for reference in ("a", "b", index_ref):
        await check_manifest(client, name, reference, index_body, index_ref)
    refused = await put_manifest(client, name, *cases["amd64-absent"], ["c"])
    assert error_codes(refused) == ["MANIFEST_BLOB_UNKNOWN"]
    await delete_manifest(client, name, index_ref)
    assert await tag_list(client, name) == []
