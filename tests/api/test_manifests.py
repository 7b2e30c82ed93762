from __future__ import annotations

import json

import httpx
import pytest

from tests.api.conftest import AppFactory
from tests.api.helpers import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    error_codes,
    image_manifest,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)

pytestmark = pytest.mark.asyncio


async def test_put_get_head_by_tag_and_digest(client: httpx.AsyncClient) -> None:
    digest, body = await push_image(client, "app/web", "v1")
    for reference in ("v1", digest):
        response = await client.get(
            f"/v2/app/web/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
        )
        assert response.status_code == 200
        assert response.content == body
        assert response.headers["Content-Type"] == OCI_MANIFEST
        assert response.headers["Docker-Content-Digest"] == digest
        head = await client.head(
            f"/v2/app/web/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
        )
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(body))
        assert head.headers["Docker-Content-Digest"] == digest


async def test_put_response_headers(client: httpx.AsyncClient) -> None:
    config = b'{"os":"linux"}'
    await push_blob(client, "hdr", config)
    body = image_manifest(config, [])
    response = await put_manifest(client, "/v2/hdr/manifests/t", body)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha256(body)
    assert response.headers["Location"].endswith(f"/v2/hdr/manifests/{sha256(body)}")


async def test_docker_schema2_manifest(client: httpx.AsyncClient) -> None:
    _, body = await push_image(client, "docker", "latest", media_type=DOCKER_MANIFEST)
    response = await client.get("/v2/docker/manifests/latest", headers={"Accept": DOCKER_MANIFEST})
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.content == body


async def test_missing_blob_is_manifest_blob_unknown(client: httpx.AsyncClient) -> None:
    config = b"{}"
    body = image_manifest(config, [])
    response = await put_manifest(client, "/v2/missing/manifests/t", body)
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert (await client.get("/v2/missing/manifests/t")).status_code == 404


async def test_blob_from_another_repository_does_not_count(client: httpx.AsyncClient) -> None:
    config = b'{"elsewhere":true}'
    await push_blob(client, "other", config)
    body = image_manifest(config, [])
    response = await put_manifest(client, "/v2/mine/manifests/t", body)
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


async def test_invalid_manifests(client: httpx.AsyncClient) -> None:
    cases = [
        b"not json",
        b"[]",
        json.dumps({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}).encode(),
        json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode(),
    ]
    for body in cases:
        response = await client.put(
            "/v2/inv/manifests/t", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
        assert response.status_code == 400, body
        assert error_codes(response) == ["MANIFEST_INVALID"], body


async def test_media_type_must_match_content_type(client: httpx.AsyncClient) -> None:
    config = b"{}"
    await push_blob(client, "ct", config)
    body = image_manifest(config, [])
    response = await client.put(
        "/v2/ct/manifests/t", content=body, headers={"Content-Type": DOCKER_MANIFEST}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_INVALID"]


async def test_manifest_over_4_mib_is_413(client: httpx.AsyncClient) -> None:
    body = b'{"schemaVersion":2,"pad":"' + b"x" * (4 << 20) + b'"}'
    response = await put_manifest(client, "/v2/big/manifests/t", body)
    assert response.status_code == 413


async def test_put_by_digest_must_match(client: httpx.AsyncClient) -> None:
    digest, body = await push_image(client, "bydigest", "x")
    response = await client.put(
        f"/v2/bydigest/manifests/{sha256(b'else')}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    ok = await client.put(
        f"/v2/bydigest/manifests/{digest}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert ok.status_code == 201


async def test_invalid_tag_is_tag_invalid(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/v2/t/manifests/-bad", content=b"{}", headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["TAG_INVALID"]
    for reference in ("a" * 129, ".INVALID_MANIFEST_NAME"):
        response = await client.get(f"/v2/t/manifests/{reference}")
        assert response.status_code == 404
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]


async def test_unknown_manifest(client: httpx.AsyncClient) -> None:
    await push_image(client, "known", "v1")
    for reference in ("nope", sha256(b"nothing")):
        response = await client.get(f"/v2/known/manifests/{reference}")
        assert response.status_code == 404
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]


async def test_index_requires_children(client: httpx.AsyncClient) -> None:
    _, child_body = await push_image(client, "multi", "amd64")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(
                    OCI_MANIFEST, child_body, platform={"architecture": "amd64", "os": "linux"}
                )
            ],
        }
    ).encode()
    response = await client.put(
        "/v2/multi/manifests/latest", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status_code == 201
    missing = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, b"{}")]}
    ).encode()
    response = await client.put(
        "/v2/multi/manifests/bad", content=missing, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


async def test_manifest_list_falls_back_to_linux_amd64(client: httpx.AsyncClient) -> None:
    amd64, amd64_body = await push_image(
        client, "fat", "amd64", seed="amd", media_type=DOCKER_MANIFEST
    )
    _, arm64_body = await push_image(client, "fat", "arm64", seed="arm", media_type=DOCKER_MANIFEST)
    manifest_list = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                descriptor(
                    DOCKER_MANIFEST, arm64_body, platform={"architecture": "arm64", "os": "linux"}
                ),
                descriptor(
                    DOCKER_MANIFEST, amd64_body, platform={"architecture": "amd64", "os": "linux"}
                ),
            ],
        }
    ).encode()
    response = await client.put(
        "/v2/fat/manifests/latest", content=manifest_list, headers={"Content-Type": DOCKER_LIST}
    )
    assert response.status_code == 201
    listed = await client.get(
        "/v2/fat/manifests/latest", headers={"Accept": f"{DOCKER_LIST}, {DOCKER_MANIFEST}"}
    )
    assert listed.headers["Content-Type"] == DOCKER_LIST
    single = await client.get("/v2/fat/manifests/latest", headers={"Accept": DOCKER_MANIFEST})
    assert single.headers["Docker-Content-Digest"] == amd64
    anything = await client.get("/v2/fat/manifests/latest")
    assert anything.headers["Content-Type"] == DOCKER_LIST


async def test_oci_manifest_not_accepted(client: httpx.AsyncClient) -> None:
    await push_image(client, "ocionly", "v1")
    response = await client.get("/v2/ocionly/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert response.status_code == 404
    assert error_codes(response) == ["MANIFEST_UNKNOWN"]


async def test_tag_moves_and_is_never_stale(client: httpx.AsyncClient) -> None:
    first, _ = await push_image(client, "moving", "latest", seed="one")
    assert (await client.get("/v2/moving/manifests/latest")).headers[
        "Docker-Content-Digest"
    ] == first
    second, _ = await push_image(client, "moving", "latest", seed="two")
    assert (await client.get("/v2/moving/manifests/latest")).headers[
        "Docker-Content-Digest"
    ] == second
    assert (await client.get(f"/v2/moving/manifests/{first}")).status_code == 200


async def test_delete_by_tag_keeps_manifest(client: httpx.AsyncClient) -> None:
    digest, _ = await push_image(client, "deltag", "v1")
    response = await client.delete("/v2/deltag/manifests/v1")
    assert response.status_code == 202
    tags = await client.get("/v2/deltag/tags/list")
    assert tags.status_code == 200
    assert tags.json() == {"name": "deltag", "tags": []}
    assert (await client.get("/v2/deltag/manifests/v1")).status_code == 404
    assert (await client.get(f"/v2/deltag/manifests/{digest}")).status_code == 200
    assert (await client.delete("/v2/deltag/manifests/v1")).status_code == 404


async def test_delete_by_digest_removes_tags(client: httpx.AsyncClient) -> None:
    digest, _ = await push_image(client, "deldigest", "v1")
    await client.put(
        "/v2/deldigest/manifests/v2",
        content=(await client.get(f"/v2/deldigest/manifests/{digest}")).content,
        headers={"Content-Type": OCI_MANIFEST},
    )
    response = await client.delete(f"/v2/deldigest/manifests/{digest}")
    assert response.status_code == 202
    for reference in ("v1", "v2", digest):
        gone = await client.get(f"/v2/deldigest/manifests/{reference}")
        assert gone.status_code == 404
        assert error_codes(gone) == ["MANIFEST_UNKNOWN"]
    assert (await client.delete(f"/v2/deldigest/manifests/{digest}")).status_code == 404


async def test_delete_disabled_for_manifests(make_app: AppFactory) -> None:
    app = make_app(delete_enabled=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        digest, _ = await push_image(c, "keep", "v1")
        response = await c.delete(f"/v2/keep/manifests/{digest}")
        assert response.status_code == 405
        assert error_codes(response) == ["UNSUPPORTED"]


async def test_subject_sets_oci_subject_and_referrers(client: httpx.AsyncClient) -> None:
    subject, subject_body = await push_image(client, "art", "v1")
    empty = b"{}"
    await push_blob(client, "art", empty)
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": descriptor(OCI_EMPTY, empty),
            "layers": [descriptor(OCI_EMPTY, empty)],
            "subject": descriptor(OCI_MANIFEST, subject_body),
            "annotations": {"org.example.kind": "sig"},
        }
    ).encode()
    response = await client.put(
        f"/v2/art/manifests/{sha256(signature)}",
        content=signature,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject
    referrers = await client.get(f"/v2/art/referrers/{subject}")
    assert referrers.status_code == 200
    assert referrers.headers["Content-Type"] == OCI_INDEX
    index = referrers.json()
    assert index["mediaType"] == OCI_INDEX
    assert index["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(signature),
            "size": len(signature),
            "artifactType": "application/vnd.example.signature",
            "annotations": {"org.example.kind": "sig"},
        }
    ]
    filtered = await client.get(
        f"/v2/art/referrers/{subject}", params={"artifactType": "other/type"}
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert filtered.json()["manifests"] == []
    await client.delete(f"/v2/art/manifests/{sha256(signature)}")
    assert (await client.get(f"/v2/art/referrers/{subject}")).json()["manifests"] == []


async def test_subject_may_be_missing(client: httpx.AsyncClient) -> None:
    empty = b"{}"
    await push_blob(client, "orphan", empty)
    absent = sha256(b"absent subject")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.example.config", empty),
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": absent, "size": 123},
        }
    ).encode()
    response = await put_manifest(client, "/v2/orphan/manifests/sig", body)
    assert response.status_code == 201
    listed = (await client.get(f"/v2/orphan/referrers/{absent}")).json()["manifests"]
    assert [entry["artifactType"] for entry in listed] == ["application/vnd.example.config"]


async def test_referrers_of_unknown_subject_is_empty(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v2/none/referrers/{sha256(b'x')}")
    assert response.status_code == 200
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    bad = await client.get("/v2/none/referrers/sha256:bad")
    assert bad.status_code == 400
