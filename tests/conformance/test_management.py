"""Conformance: the Content Management workflow (``04_management_test.go``).

Setup pushes a tagged manifest and counts the tags; the tests delete the tag, the manifest and
its blobs and check that they are gone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conformance import strict
from tests.conformance.content import TEST_TAG_NAME
from tests.conformance.fixtures import (
    Suite,
    Workflow,
    error_codes,
    expect_2xx,
    expect_status,
    run_only_if,
    tag_list,
)

pytestmark = [pytest.mark.server]


@dataclass
class ManagementState:
    tag_to_delete: str = ""
    num_tags: int = 0
    blob_delete_allowed: bool = True


@pytest.fixture(scope="module")
def state(suite: Suite) -> ManagementState:
    return ManagementState()


@pytest.fixture(autouse=True)
def _enabled(suite: Suite) -> None:
    suite.skip_unless_enabled(Workflow.CONTENT_MANAGEMENT)


def _setup(suite: Suite) -> None:
    run_only_if(suite.settings.run_content_management_setup)


# Setup


def test_setup_populate_registry_with_test_config_blob(suite: Suite) -> None:
    """Populate registry with test config blob"""
    _setup(suite)
    config = suite.content.configs[3]
    expect_2xx(suite.client.push_blob(config.content, config.digest))


def test_setup_populate_registry_with_test_layer(suite: Suite) -> None:
    """Populate registry with test layer"""
    _setup(suite)
    layer = suite.content.layer
    expect_2xx(suite.client.push_blob(layer.content, layer.digest))


def test_setup_populate_registry_with_test_tag(suite: Suite, state: ManagementState) -> None:
    """Populate registry with test tag"""
    _setup(suite)
    state.tag_to_delete = TEST_TAG_NAME
    response = suite.client.put_manifest(state.tag_to_delete, suite.content.manifests[3].content)
    expect_2xx(response)


def test_setup_check_how_many_tags_there_are_before_anything_gets_deleted(
    suite: Suite, state: ManagementState
) -> None:
    """Check how many tags there are before anything gets deleted"""
    _setup(suite)
    response = suite.client.request("GET", "/v2/<name>/tags/list")
    expect_status(response, 200)
    response.json()  # must be JSON
    state.num_tags = len(tag_list(response))


# Manifest delete


def test_delete_request_to_manifest_tag_should_return_202_unless_tag_deletion_is_disallowed(
    suite: Suite, state: ManagementState
) -> None:
    """DELETE request to manifest tag should return 202, unless tag deletion is disallowed
    (400/405)"""
    response = suite.client.request(
        "DELETE", "/v2/<name>/manifests/<reference>", reference=state.tag_to_delete
    )
    expect_status(response, 400, 202, 405)
    if response.status_code == 400:
        assert error_codes(response)[0] == "UNSUPPORTED"
    if suite.strict:
        strict.check_accepted(response)


@pytest.mark.strict
def test_strict_get_request_to_deleted_tag_should_yield_404_manifest_unknown(
    suite: Suite, state: ManagementState
) -> None:
    """Strict: once a tag is deleted, GET of it is 404 MANIFEST_UNKNOWN"""
    response = suite.client.request(
        "GET", "/v2/<name>/manifests/<reference>", reference=state.tag_to_delete
    )
    strict.check_error(response, 404, "MANIFEST_UNKNOWN")


def test_delete_request_to_manifest_digest_should_yield_202_response_unless_already_deleted(
    suite: Suite,
) -> None:
    """DELETE request to manifest (digest) should yield 202 response unless already deleted"""
    response = suite.client.request(
        "DELETE", "/v2/<name>/manifests/<digest>", digest=suite.content.manifests[3].digest
    )
    # If the tag delete above removed the manifest too, this may be a 404 (which is fine).
    expect_status(response, 202, 404)
    if suite.strict:
        # Deleting a tag deletes only the tag (the spec has separate requests for both).
        strict.check_accepted(response)


def test_get_request_to_deleted_manifest_url_should_yield_404_response_unless_delete_is_disallowed(
    suite: Suite,
) -> None:
    """GET request to deleted manifest URL should yield 404 response, unless delete is
    disallowed"""
    response = suite.client.request(
        "GET", "/v2/<name>/manifests/<digest>", digest=suite.content.manifests[3].digest
    )
    expect_status(response, 404, 200)
    if suite.strict:
        strict.check_error(response, 404, "MANIFEST_UNKNOWN")


def test_get_request_to_tags_list_should_reflect_manifest_deletion(
    suite: Suite, state: ManagementState
) -> None:
    """GET request to tags list should reflect manifest deletion"""
    response = suite.client.request("GET", "/v2/<name>/tags/list")
    expect_status(response, 200)
    response.json()  # must be JSON
    tags = tag_list(response)
    assert len(tags) < state.num_tags, f"{tags} after deleting one of {state.num_tags} tags"


# Blob delete


def test_delete_request_to_blob_url_should_yield_202_response(
    suite: Suite, state: ManagementState
) -> None:
    """DELETE request to blob URL should yield 202 response"""
    _setup(suite)
    for digest in (suite.content.configs[3].digest, suite.content.layer.digest):
        response = suite.client.request("DELETE", "/v2/<name>/blobs/<digest>", digest=digest)
        expect_status(response, 202, 404, 405)
        if suite.strict:
            strict.check_accepted(response)
    if response.status_code == 405:
        state.blob_delete_allowed = False


def test_get_request_to_deleted_blob_url_should_yield_404_response(
    suite: Suite, state: ManagementState
) -> None:
    """GET request to deleted blob URL should yield 404 response"""
    _setup(suite)
    run_only_if(state.blob_delete_allowed)
    response = suite.client.request(
        "GET", "/v2/<name>/blobs/<digest>", digest=suite.content.configs[3].digest
    )
    expect_status(response, 404)
    if suite.strict:
        strict.check_error(response, 404, "BLOB_UNKNOWN")


@pytest.mark.strict
def test_strict_get_request_to_deleted_layer_url_should_yield_404_blob_unknown(
    suite: Suite,
) -> None:
    """Strict: the layer deleted with the config is gone too: 404 BLOB_UNKNOWN"""
    response = suite.client.request(
        "GET", "/v2/<name>/blobs/<digest>", digest=suite.content.layer.digest
    )
    strict.check_error(response, 404, "BLOB_UNKNOWN")
