"""Conformance: the Push workflow (``02_push_test.go``).

Streamed, monolithic and chunked blob uploads, cross-repository mounts, manifest uploads, and
a teardown that deletes what was pushed. Later tests continue from the responses of earlier
ones (the upload session of the previous test, the status of the previous mount).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest

from tests.conformance import strict
from tests.conformance.content import (
    EMPTY_LAYER_TEST_TAG,
    MANIFEST_MEDIA_TYPE,
    NONEXISTENT_MANIFEST,
)
from tests.conformance.fixtures import (
    Suite,
    Workflow,
    expect_2xx,
    expect_status,
    relative_location,
    run_only_if,
    run_only_if_not,
)

pytestmark = [pytest.mark.server]

OCTET_STREAM = {"Content-Type": "application/octet-stream"}


@dataclass
class PushState:
    last_response: httpx.Response | None = None
    prev_response: httpx.Response | None = None
    empty_layer_manifest_ref: str = ""


@pytest.fixture(scope="module")
def state(suite: Suite) -> PushState:
    return PushState()


@pytest.fixture(autouse=True)
def _enabled(suite: Suite) -> None:
    suite.skip_unless_enabled(Workflow.PUSH)


def _last(state: PushState) -> httpx.Response:
    assert state.last_response is not None, "no response from the previous test"
    return state.last_response


def _prev(state: PushState) -> httpx.Response:
    assert state.prev_response is not None, "no upload session from a previous test"
    return state.prev_response


# Blob Upload Streamed


def test_patch_request_with_blob_in_body_should_yield_202_response(
    suite: Suite, state: PushState
) -> None:
    """PATCH request with blob in body should yield 202 response"""
    response = suite.client.request("POST", "/v2/<name>/blobs/uploads/")
    assert response.headers.get("Location"), f"no Location on {response.status_code}"
    response = suite.client.request(
        "PATCH",
        relative_location(response),
        headers=OCTET_STREAM,
        content=suite.content.blob_a.content,
    )
    expect_status(response, 202)
    state.last_response = response
    if suite.strict:
        strict.check_upload_progress(response, len(suite.content.blob_a.content))


def test_put_request_to_session_url_with_digest_should_yield_201_response(
    suite: Suite, state: PushState
) -> None:
    """PUT request to session URL with digest should yield 201 response"""
    response = suite.client.request(
        "PUT",
        relative_location(_last(state)),
        params={"digest": suite.content.blob_a.digest},
        headers=OCTET_STREAM,
    )
    expect_status(response, 201)
    assert response.headers.get("Location"), "no Location on 201"


# Blob Upload Monolithic


def test_get_nonexistent_blob_should_result_in_404_response(suite: Suite) -> None:
    """GET nonexistent blob should result in 404 response"""
    response = suite.client.request(
        "GET", "/v2/<name>/blobs/<digest>", digest=suite.content.dummy_digest
    )
    expect_status(response, 404)
    if suite.strict:
        strict.check_error(response, 404, "BLOB_UNKNOWN")


def test_post_request_with_digest_and_blob_should_yield_a_201_or_202(
    suite: Suite, state: PushState
) -> None:
    """POST request with digest and blob should yield a 201 or 202"""
    config = suite.content.configs[1]
    response = suite.client.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        params={"digest": config.digest},
        headers=OCTET_STREAM,
        content=config.content,
    )
    assert response.headers.get("Location"), f"no Location on {response.status_code}"
    expect_status(response, 201, 202)
    state.last_response = response


def test_get_request_to_blob_url_from_prior_request_should_yield_200_or_404_based_on_response_code(
    suite: Suite, state: PushState
) -> None:
    """GET request to blob URL from prior request should yield 200 or 404 based on response code"""
    last = _last(state)
    response = suite.client.request(
        "GET", "/v2/<name>/blobs/<digest>", digest=suite.content.configs[1].digest
    )
    expect_status(response, 404 if last.status_code == 202 else 200)


def test_post_request_should_yield_a_session_id(suite: Suite, state: PushState) -> None:
    """POST request should yield a session ID"""
    response = suite.client.request("POST", "/v2/<name>/blobs/uploads/")
    expect_status(response, 202)
    state.last_response = response
    if suite.strict:
        strict.check_location(response)


def test_put_upload_of_a_blob_should_yield_a_201_response(suite: Suite, state: PushState) -> None:
    """PUT upload of a blob should yield a 201 Response"""
    config = suite.content.configs[1]
    response = suite.client.request(
        "PUT",
        relative_location(_last(state)),
        params={"digest": config.digest},
        headers=OCTET_STREAM,
        content=config.content,
    )
    assert response.headers.get("Location"), f"no Location on {response.status_code}"
    expect_status(response, 201)


def test_get_request_to_existing_blob_should_yield_200_response(suite: Suite) -> None:
    """GET request to existing blob should yield 200 response"""
    response = suite.client.request(
        "GET", "/v2/<name>/blobs/<digest>", digest=suite.content.configs[1].digest
    )
    expect_status(response, 200)
    if suite.strict:
        strict.check_blob(response, suite.content.configs[1])


def test_put_upload_of_a_layer_blob_should_yield_a_201_response(suite: Suite) -> None:
    """PUT upload of a layer blob should yield a 201 Response"""
    response = suite.client.push_blob(suite.content.layer.content, suite.content.layer.digest)
    assert response.headers.get("Location"), f"no Location on {response.status_code}"
    expect_status(response, 201)


def test_get_request_to_existing_layer_should_yield_200_response(suite: Suite) -> None:
    """GET request to existing layer should yield 200 response"""
    response = suite.client.request(
        "GET", "/v2/<name>/blobs/<digest>", digest=suite.content.layer.digest
    )
    expect_status(response, 200)
    if suite.strict:
        strict.check_blob(response, suite.content.layer)


# Blob Upload Chunked


def test_out_of_order_blob_upload_should_return_416(suite: Suite) -> None:
    """Out-of-order blob upload should return 416"""
    response = suite.client.request("POST", "/v2/<name>/blobs/uploads/")
    assert response.headers.get("Location"), f"no Location on {response.status_code}"

    # Rebuild the chunked blob if the registry's minimum chunk is larger than our chunks.
    if min_size := response.headers.get("OCI-Chunk-Min-Length"):
        assert min_size.isdigit(), f"bad OCI-Chunk-Min-Length {min_size!r}"
        if int(min_size) > len(suite.content.chunked.chunk1):
            suite.content.rebuild_chunked(int(min_size) * 2 - 2)

    chunked = suite.content.chunked
    response = suite.client.request(
        "PATCH",
        relative_location(response),
        headers={**OCTET_STREAM, "Content-Range": chunked.chunk2_range},
        content=chunked.chunk2,
    )
    expect_status(response, 416)


def test_patch_request_with_first_chunk_should_return_202(suite: Suite, state: PushState) -> None:
    """PATCH request with first chunk should return 202"""
    response = suite.client.request("POST", "/v2/<name>/blobs/uploads/")
    assert response.headers.get("Location"), f"no Location on {response.status_code}"
    state.prev_response = response
    chunked = suite.content.chunked
    response = suite.client.request(
        "PATCH",
        relative_location(response),
        headers={**OCTET_STREAM, "Content-Range": chunked.chunk1_range},
        content=chunked.chunk1,
    )
    expect_status(response, 202)
    assert response.headers.get("Range") == chunked.chunk1_range
    state.last_response = response
    if suite.strict:
        strict.check_upload_progress(response, len(chunked.chunk1))


def test_retry_previous_blob_chunk_should_return_416(suite: Suite, state: PushState) -> None:
    """Retry previous blob chunk should return 416"""
    chunked = suite.content.chunked
    response = suite.client.request(
        "PATCH",
        relative_location(_prev(state)),
        headers={**OCTET_STREAM, "Content-Range": chunked.chunk1_range},
        content=chunked.chunk1,
    )
    expect_status(response, 416)


def test_get_on_stale_blob_upload_should_return_204_with_a_range_and_location(
    suite: Suite, state: PushState
) -> None:
    """Get on stale blob upload should return 204 with a range and location"""
    response = suite.client.request("GET", relative_location(_prev(state)))
    expect_status(response, 204)
    assert response.headers.get("Location"), "no Location on 204"
    assert response.headers.get("Range") == suite.content.chunked.chunk1_range
    state.last_response = response


def test_patch_request_with_second_chunk_should_return_202(suite: Suite, state: PushState) -> None:
    """PATCH request with second chunk should return 202"""
    chunked = suite.content.chunked
    response = suite.client.request(
        "PATCH",
        relative_location(_last(state)),
        headers={**OCTET_STREAM, "Content-Range": chunked.chunk2_range},
        content=chunked.chunk2,
    )
    expect_status(response, 202)
    assert response.headers.get("Location"), "no Location on 202"
    state.last_response = response
    if suite.strict:
        strict.check_upload_progress(response, len(chunked.data))


def test_put_request_with_digest_should_return_201(suite: Suite, state: PushState) -> None:
    """PUT request with digest should return 201"""
    response = suite.client.request(
        "PUT",
        relative_location(_last(state)),
        params={"digest": suite.content.chunked.digest},
        headers=OCTET_STREAM,
    )
    expect_status(response, 201)
    assert response.headers.get("Location"), "no Location on 201"


@pytest.mark.strict
def test_strict_get_on_unknown_blob_upload_should_return_404_blob_upload_unknown(
    suite: Suite, state: PushState
) -> None:
    """Strict: the upload status of a session that never existed, and of the session just
    completed, is 404 BLOB_UPLOAD_UNKNOWN"""
    response = suite.client.request("GET", f"/v2/<name>/blobs/uploads/{uuid.uuid4()}")
    strict.check_error(response, 404, "BLOB_UPLOAD_UNKNOWN")
    response = suite.client.request("GET", relative_location(_last(state)))
    strict.check_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


# Cross-Repository Blob Mount


def test_cross_mounting_of_a_blob_without_the_from_argument_should_yield_session_id(
    suite: Suite,
) -> None:
    """Cross-mounting of a blob without the from argument should yield session id"""
    response = suite.client.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=suite.settings.crossmount_namespace,
        params={"mount": suite.content.dummy_digest},
    )
    expect_status(response, 202)
    assert response.headers.get("Location"), "no Location on 202"


def test_post_request_to_mount_another_repositorys_blob_should_return_201_or_202(
    suite: Suite, state: PushState
) -> None:
    """POST request to mount another repository's blob should return 201 or 202"""
    response = suite.client.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=suite.settings.crossmount_namespace,
        params={"mount": suite.content.blob_a.digest, "from": suite.settings.namespace},
    )
    expect_status(response, 201, 202)
    state.last_response = response
    if suite.strict:
        strict.check_location(response)


def test_get_request_to_test_digest_within_cross_mount_namespace_should_return_200(
    suite: Suite, state: PushState
) -> None:
    """GET request to test digest within cross-mount namespace should return 200"""
    last = _last(state)
    run_only_if(last.status_code == 201)
    expected = f"/v2/{suite.settings.crossmount_namespace}/blobs/{suite.content.blob_a.digest}"
    assert relative_location(last) == expected
    response = suite.client.request("GET", relative_location(last))
    expect_status(response, 200)


def test_cross_mounting_of_nonexistent_blob_should_yield_session_id(
    suite: Suite, state: PushState
) -> None:
    """Cross-mounting of nonexistent blob should yield session id"""
    last = _last(state)
    run_only_if(last.status_code == 202)
    prefix = f"/v2/{suite.settings.crossmount_namespace}/blobs/uploads/"
    assert relative_location(last).startswith(prefix)


@pytest.mark.strict
def test_strict_cross_mounting_of_nonexistent_blob_should_yield_session_id(suite: Suite) -> None:
    """Strict: mounting a blob that the `from` repository does not hold yields 202 and an
    upload session in the target repository (what the test above checks when the mount of
    an existing blob was not done)"""
    response = suite.client.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=suite.settings.crossmount_namespace,
        params={"mount": suite.content.dummy_digest, "from": suite.settings.namespace},
    )
    expect_status(response, 202)
    strict.check_location(response)
    prefix = f"/v2/{suite.settings.crossmount_namespace}/blobs/uploads/"
    assert relative_location(response).startswith(prefix)


def test_cross_mounting_without_from_and_automatic_content_discovery_enabled_should_return_a_201(
    suite: Suite, state: PushState
) -> None:
    """Cross-mounting without from, and automatic content discovery enabled should return a 201"""
    run_only_if(suite.settings.run_automatic_crossmount_test)
    run_only_if(_last(state).status_code == 201)
    run_only_if(suite.settings.automatic_crossmount_enabled)
    response = suite.client.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=suite.settings.crossmount_namespace,
        params={"mount": suite.content.blob_a.digest},
    )
    expect_status(response, 201)
    if suite.strict:
        strict.check_location(response)


def test_cross_mounting_without_from_and_automatic_content_discovery_disabled_should_return_a_202(
    suite: Suite, state: PushState
) -> None:
    """Cross-mounting without from, and automatic content discovery disabled should return a 202"""
    run_only_if(suite.settings.run_automatic_crossmount_test)
    run_only_if(_last(state).status_code == 201)
    run_only_if_not(suite.settings.automatic_crossmount_enabled)
    response = suite.client.request(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=suite.settings.crossmount_namespace,
        params={"mount": suite.content.blob_a.digest},
    )
    expect_status(response, 202)


# Manifest Upload


def test_get_nonexistent_manifest_should_return_404(suite: Suite) -> None:
    """GET nonexistent manifest should return 404"""
    response = suite.client.request(
        "GET", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST
    )
    expect_status(response, 404)
    if suite.strict:
        strict.check_error(response, 404, "MANIFEST_UNKNOWN")


def test_put_should_accept_a_manifest_upload(suite: Suite) -> None:
    """PUT should accept a manifest upload"""
    for i in range(4):
        response = suite.client.put_manifest(f"test{i}", suite.content.manifests[1].content)
        assert response.headers.get("Location"), f"no Location on {response.status_code}"
        expect_status(response, 201)
        if suite.strict:
            strict.check_manifest_created(response, suite.content.manifests[1])


def test_registry_should_accept_a_manifest_upload_with_no_layers(
    suite: Suite, state: PushState
) -> None:
    """Registry should accept a manifest upload with no layers"""
    response = suite.client.put_manifest(
        EMPTY_LAYER_TEST_TAG, suite.content.empty_layer_manifest.content
    )
    if response.status_code == 201:
        location = response.headers.get("Location", "")
        state.empty_layer_manifest_ref = location
        assert location, "no Location on 201"
    # Otherwise the Go suite only warns: "image manifest with no layers is not supported".
    if suite.strict:
        strict.check_manifest_created(response, suite.content.empty_layer_manifest)


@pytest.mark.strict
def test_strict_manifest_with_no_layers_can_be_pulled(suite: Suite) -> None:
    """Strict: the manifest with no layers is served as pushed, with the media type it was
    pushed with (it has no mediaType field)"""
    response = suite.client.request(
        "GET",
        "/v2/<name>/manifests/<reference>",
        reference=EMPTY_LAYER_TEST_TAG,
        headers={"Accept": MANIFEST_MEDIA_TYPE},
    )
    strict.check_manifest(response, suite.content.empty_layer_manifest, MANIFEST_MEDIA_TYPE)


def test_get_request_to_manifest_url_digest_should_yield_200_response(suite: Suite) -> None:
    """GET request to manifest URL (digest) should yield 200 response"""
    response = suite.client.request(
        "GET",
        "/v2/<name>/manifests/<digest>",
        digest=suite.content.manifests[1].digest,
        headers={"Accept": MANIFEST_MEDIA_TYPE},
    )
    expect_status(response, 200)
    if suite.strict:
        strict.check_manifest(response, suite.content.manifests[1], MANIFEST_MEDIA_TYPE)


# Teardown


def _delete_manifests(suite: Suite, state: PushState) -> None:
    response = suite.client.request(
        "DELETE", "/v2/<name>/manifests/<digest>", digest=suite.content.manifests[1].digest
    )
    expect_2xx(response, 405)
    if suite.strict:
        strict.check_accepted(response)
    if state.empty_layer_manifest_ref:
        response = suite.client.request(
            "DELETE",
            "/v2/<name>/manifests/<reference>",
            reference=suite.content.empty_layer_manifest.digest,
        )
        expect_2xx(response, 405)
        if suite.strict:
            strict.check_accepted(response)


def _delete_blob(suite: Suite, digest: str) -> None:
    response = suite.client.request("DELETE", "/v2/<name>/blobs/<digest>", digest=digest)
    expect_2xx(response, 404, 405)
    if suite.strict:
        strict.check_accepted(response)


@pytest.mark.only_with(delete_manifest_before_blobs=True)
def test_teardown_delete_manifest_created_in_tests(suite: Suite, state: PushState) -> None:
    """Delete manifest created in tests (when OCI_DELETE_MANIFEST_BEFORE_BLOBS)"""
    run_only_if(suite.settings.delete_manifest_before_blobs)
    run_only_if(suite.settings.run_push_setup)
    _delete_manifests(suite, state)


def test_teardown_delete_config_blob_created_in_tests(suite: Suite) -> None:
    """Delete config blob created in tests"""
    run_only_if(suite.settings.run_push_setup)
    _delete_blob(suite, suite.content.configs[1].digest)


def test_teardown_delete_layer_blob_created_in_setup(suite: Suite) -> None:
    """Delete layer blob created in setup"""
    run_only_if(suite.settings.run_push_setup)
    _delete_blob(suite, suite.content.layer.digest)


@pytest.mark.only_with(delete_manifest_before_blobs=False)
def test_teardown_delete_manifest_created_in_tests_after_blobs(
    suite: Suite, state: PushState
) -> None:
    """Delete manifest created in tests (unless OCI_DELETE_MANIFEST_BEFORE_BLOBS)"""
    run_only_if_not(suite.settings.delete_manifest_before_blobs)
    run_only_if(suite.settings.run_push_setup)
    _delete_manifests(suite, state)
