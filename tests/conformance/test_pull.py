"""Conformance: the Pull workflow (``01_pull_test.go``).

Setup pushes two configs, a layer and two manifests (one by tag, one by digest); the tests
then HEAD and GET them; teardown deletes them again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conformance import strict
from tests.conformance.content import MANIFEST_MEDIA_TYPE, NONEXISTENT_MANIFEST, TEST_TAG_NAME
from tests.conformance.fixtures import (
    Suite,
    Workflow,
    error_codes,
    expect_2xx,
    expect_status,
    is_known_error_code,
    run_only_if,
    run_only_if_not,
)

pytestmark = [pytest.mark.server]

ACCEPT_MANIFEST = {"Accept": MANIFEST_MEDIA_TYPE}

#: Steps that push or delete the test content: not with OCI_TAG_NAME, OCI_MANIFEST_DIGEST and
#: OCI_BLOB_DIGEST, which name content that is already there.
with_setup = pytest.mark.only_with(run_pull_setup=True)


@dataclass
class PullState:
    tag: str = ""


@pytest.fixture(scope="module")
def state(suite: Suite) -> PullState:
    return PullState()


@pytest.fixture(autouse=True)
def _enabled(suite: Suite) -> None:
    suite.skip_unless_enabled(Workflow.PULL)


def _setup(suite: Suite) -> None:
    run_only_if(suite.settings.run_pull_setup)


# Setup


@with_setup
def test_setup_populate_registry_with_test_blob_config0(suite: Suite) -> None:
    """Populate registry with test blob"""
    _setup(suite)
    config = suite.content.configs[0]
    expect_2xx(suite.client.push_blob(config.content, config.digest))


@with_setup
def test_setup_populate_registry_with_test_blob_config1(suite: Suite) -> None:
    """Populate registry with test blob"""
    _setup(suite)
    config = suite.content.configs[1]
    expect_2xx(suite.client.push_blob(config.content, config.digest))


@with_setup
def test_setup_populate_registry_with_test_layer(suite: Suite) -> None:
    """Populate registry with test layer"""
    _setup(suite)
    layer = suite.content.layer
    expect_2xx(suite.client.push_blob(layer.content, layer.digest))


@with_setup
def test_setup_populate_registry_with_test_manifest_by_tag(suite: Suite, state: PullState) -> None:
    """Populate registry with test manifest"""
    _setup(suite)
    state.tag = TEST_TAG_NAME
    expect_2xx(suite.client.put_manifest(state.tag, suite.content.manifests[0].content))


@with_setup
def test_setup_populate_registry_with_test_manifest_by_digest(suite: Suite) -> None:
    """Populate registry with test manifest"""
    _setup(suite)
    manifest = suite.content.manifests[1]
    expect_2xx(suite.client.put_manifest(manifest.digest, manifest.content))


@pytest.mark.only_with(run_pull_setup=False)
def test_setup_get_tag_name_from_environment(suite: Suite, state: PullState) -> None:
    """Get tag name from environment"""
    run_only_if_not(suite.settings.run_pull_setup)
    if suite.settings.tag_name:
        state.tag = suite.settings.tag_name


# Pull blobs


def test_head_request_to_nonexistent_blob_should_result_in_404_response(suite: Suite) -> None:
    """HEAD request to nonexistent blob should result in 404 response"""
    response = suite.client.request(
        "HEAD", "/v2/<name>/blobs/<digest>", digest=suite.content.dummy_digest
    )
    expect_status(response, 404)


def test_head_request_to_existing_blob_should_yield_200(suite: Suite) -> None:
    """HEAD request to existing blob should yield 200"""
    digest = suite.content.configs[0].digest
    response = suite.client.request("HEAD", "/v2/<name>/blobs/<digest>", digest=digest)
    expect_status(response, 200)
    if header := response.headers.get("Docker-Content-Digest"):
        assert header == digest
    if suite.strict:
        strict.check_blob(response, suite.content.configs[0], head=True)


def test_get_nonexistent_blob_should_result_in_404_response(suite: Suite) -> None:
    """GET nonexistent blob should result in 404 response"""
    response = suite.client.request(
        "GET", "/v2/<name>/blobs/<digest>", digest=suite.content.dummy_digest
    )
    expect_status(response, 404)
    if suite.strict:
        strict.check_error(response, 404, "BLOB_UNKNOWN")


def test_get_request_to_existing_blob_url_should_yield_200(suite: Suite) -> None:
    """GET request to existing blob URL should yield 200"""
    response = suite.client.request(
        "GET", "/v2/<name>/blobs/<digest>", digest=suite.content.configs[0].digest
    )
    expect_status(response, 200)
    if suite.strict:
        strict.check_blob(response, suite.content.configs[0])


# Pull manifests


def test_head_request_to_nonexistent_manifest_should_return_404(suite: Suite) -> None:
    """HEAD request to nonexistent manifest should return 404"""
    response = suite.client.request(
        "HEAD", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST
    )
    expect_status(response, 404)


@pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
def test_head_request_to_manifest_path_digest_should_yield_200_response(
    suite: Suite, index: int
) -> None:
    """HEAD request to manifest[0] / manifest[1] path (digest) should yield 200 response"""
    digest = suite.content.manifests[index].digest
    response = suite.client.request(
        "HEAD", "/v2/<name>/manifests/<digest>", digest=digest, headers=ACCEPT_MANIFEST
    )
    expect_status(response, 200)
    if header := response.headers.get("Docker-Content-Digest"):
        assert header == digest
    if suite.strict:
        manifest = suite.content.manifests[index]
        strict.check_manifest(response, manifest, MANIFEST_MEDIA_TYPE, head=True)


def test_head_request_to_manifest_path_tag_should_yield_200_response(
    suite: Suite, state: PullState
) -> None:
    """HEAD request to manifest path (tag) should yield 200 response"""
    assert state.tag, "no tag was pushed in setup or given in OCI_TAG_NAME"
    response = suite.client.request(
        "HEAD", "/v2/<name>/manifests/<reference>", reference=state.tag, headers=ACCEPT_MANIFEST
    )
    expect_status(response, 200)
    if header := response.headers.get("Docker-Content-Digest"):
        assert header == suite.content.manifests[0].digest
    if suite.strict:
        manifest = suite.content.manifests[0]
        strict.check_manifest(response, manifest, MANIFEST_MEDIA_TYPE, head=True)


def test_get_nonexistent_manifest_should_return_404(suite: Suite) -> None:
    """GET nonexistent manifest should return 404"""
    response = suite.client.request(
        "GET", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST
    )
    expect_status(response, 404)
    if suite.strict:
        strict.check_error(response, 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
def test_get_request_to_manifest_path_digest_should_yield_200_response(
    suite: Suite, index: int
) -> None:
    """GET request to manifest[0] / manifest[1] path (digest) should yield 200 response"""
    response = suite.client.request(
        "GET",
        "/v2/<name>/manifests/<digest>",
        digest=suite.content.manifests[index].digest,
        headers=ACCEPT_MANIFEST,
    )
    expect_status(response, 200)
    if suite.strict:
        strict.check_manifest(response, suite.content.manifests[index], MANIFEST_MEDIA_TYPE)


def test_get_request_to_manifest_path_tag_should_yield_200_response(
    suite: Suite, state: PullState
) -> None:
    """GET request to manifest path (tag) should yield 200 response"""
    assert state.tag, "no tag was pushed in setup or given in OCI_TAG_NAME"
    response = suite.client.request(
        "GET", "/v2/<name>/manifests/<reference>", reference=state.tag, headers=ACCEPT_MANIFEST
    )
    expect_status(response, 200)
    if suite.strict:
        strict.check_manifest(response, suite.content.manifests[0], MANIFEST_MEDIA_TYPE)


# Error codes


def test_400_response_body_should_contain_oci_conforming_json_message(suite: Suite) -> None:
    """400 response body should contain OCI-conforming JSON message"""
    response = suite.client.request(
        "GET",
        "/v2/<name>/manifests/<reference>",
        reference="sha256:totallywrong",
        headers={"Content-Type": MANIFEST_MEDIA_TYPE},
        content=suite.content.invalid_manifest,
    )
    expect_status(response, 400, 404)
    if response.status_code == 400:
        codes = error_codes(response)
        assert is_known_error_code(codes[0]), f"unknown error code {codes[0]!r}"
    if suite.strict:
        # Not a tag, and not a valid sha256 digest (64 hex digits): the reference is invalid.
        strict.check_error(response, 400, "DIGEST_INVALID")


# Teardown


def _delete_manifest(suite: Suite, index: int) -> None:
    response = suite.client.request(
        "DELETE", "/v2/<name>/manifests/<digest>", digest=suite.content.manifests[index].digest
    )
    expect_2xx(response, 405)
    if suite.strict:
        strict.check_accepted(response)


def _delete_blob(suite: Suite, digest: str) -> None:
    response = suite.client.request("DELETE", "/v2/<name>/blobs/<digest>", digest=digest)
    expect_2xx(response, 404, 405)
    if suite.strict:
        strict.check_accepted(response)


@pytest.mark.only_with(run_pull_setup=True, delete_manifest_before_blobs=True)
@pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
def test_teardown_delete_manifest_created_in_setup(suite: Suite, index: int) -> None:
    """Delete manifest[0] / manifest[1] created in setup (when OCI_DELETE_MANIFEST_BEFORE_BLOBS)"""
    run_only_if(suite.settings.delete_manifest_before_blobs)
    _setup(suite)
    _delete_manifest(suite, index)


@with_setup
@pytest.mark.parametrize("index", [0, 1], ids=["config0", "config1"])
def test_teardown_delete_config_blob_created_in_setup(suite: Suite, index: int) -> None:
    """Delete config[0] / config[1] blob created in setup"""
    _setup(suite)
    _delete_blob(suite, suite.content.configs[index].digest)


@with_setup
def test_teardown_delete_layer_blob_created_in_setup(suite: Suite) -> None:
    """Delete layer blob created in setup"""
    _setup(suite)
    _delete_blob(suite, suite.content.layer.digest)


@pytest.mark.only_with(run_pull_setup=True, delete_manifest_before_blobs=False)
@pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
def test_teardown_delete_manifest_created_in_setup_after_blobs(suite: Suite, index: int) -> None:
    """Delete manifest[0] / manifest[1] created in setup
    (unless OCI_DELETE_MANIFEST_BEFORE_BLOBS)"""
    run_only_if_not(suite.settings.delete_manifest_before_blobs)
    _setup(suite)
    _delete_manifest(suite, index)
