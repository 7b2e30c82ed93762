"""Conformance: the Content Discovery workflow (``03_discovery_test.go``).

Setup pushes tagged manifests and a set of referrers (artifacts whose type comes from the
config media type or from ``artifactType``, an index, and one artifact whose subject is never
pushed); the tests list tags and referrers; teardown deletes everything again.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conformance import strict
from tests.conformance.content import (
    ARTIFACT_TYPE_A,
    ARTIFACT_TYPE_FILTER,
    EMPTY_JSON_DIGEST,
    INDEX_MEDIA_TYPE,
    TEST_ANNOTATION_KEY,
    TEST_TAG_NAME,
    Blob,
)
from tests.conformance.fixtures import (
    Suite,
    Workflow,
    describe,
    expect_2xx,
    expect_status,
    nth,
    run_only_if,
    run_only_if_not,
    tag_list,
)

pytestmark = [pytest.mark.server]

#: Steps that push or delete the test content: not with OCI_TAG_LIST, which names tags that
#: are already there.
with_setup = pytest.mark.only_with(run_content_discovery_setup=True)


@dataclass
class DiscoveryState:
    num_tags: int = 4
    tag_list: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def state(suite: Suite) -> DiscoveryState:
    return DiscoveryState()


@pytest.fixture(autouse=True)
def _enabled(suite: Suite) -> None:
    suite.skip_unless_enabled(Workflow.CONTENT_DISCOVERY)


def _setup(suite: Suite) -> None:
    run_only_if(suite.settings.run_content_discovery_setup)


def _push_blob(suite: Suite, blob: Blob) -> None:
    expect_2xx(suite.client.push_blob(blob.content, blob.digest))


def _push_referrer(suite: Suite, blob: Blob, subject: Blob, media_type: str = "") -> None:
    response = suite.client.put_manifest(blob.digest, blob.content, media_type)
    expect_2xx(response)
    assert response.headers.get("OCI-Subject") == subject.digest, (
        f"expected OCI-Subject {subject.digest}, got {response.headers.get('OCI-Subject')!r}"
    )


def _referrers_index(response: httpx.Response) -> list[dict[str, Any]]:
    """The descriptors of a referrers response, after the checks every referrers test makes."""
    expect_status(response, 200)
    assert response.headers.get("Content-Type") == INDEX_MEDIA_TYPE
    try:
        body = response.json()
    except json.JSONDecodeError as exc:
        raise AssertionError(f"referrers body is not JSON: {describe(response)}") from exc
    assert isinstance(body, dict), f"referrers body is not an object: {describe(response)}"
    manifests = body.get("manifests") or []
    assert isinstance(manifests, list)
    return manifests


def _check_annotations(suite: Suite, manifests: list[dict[str, Any]]) -> None:
    for descriptor in manifests:
        annotations = descriptor.get("annotations") or {}
        assert len(annotations) == 1, f"expected one annotation in {descriptor}"
        expected = suite.content.annotation_values.get(str(descriptor.get("digest")), "")
        assert annotations.get(TEST_ANNOTATION_KEY) == expected


# Setup


@with_setup
def test_setup_populate_registry_with_test_blob(suite: Suite) -> None:
    """Populate registry with test blob"""
    _setup(suite)
    _push_blob(suite, suite.content.configs[2])


@with_setup
def test_setup_populate_registry_with_test_layer(suite: Suite) -> None:
    """Populate registry with test layer"""
    _setup(suite)
    _push_blob(suite, suite.content.layer)


@with_setup
def test_setup_populate_registry_with_test_tags(suite: Suite, state: DiscoveryState) -> None:
    """Populate registry with test tags"""
    _setup(suite)
    for i in range(state.num_tags):
        tag = f"test{i}"
        state.tag_list.append(tag)
        response = suite.client.put_manifest(tag, suite.content.manifests[2].content)
        expect_2xx(response)
    state.tag_list = tag_list(suite.client.request("GET", "/v2/<name>/tags/list"))


@pytest.mark.only_with(run_content_discovery_setup=False)
def test_setup_populate_registry_with_test_tags_no_push(
    suite: Suite, state: DiscoveryState
) -> None:
    """Populate registry with test tags (no push)"""
    run_only_if_not(suite.settings.run_content_discovery_setup)
    state.tag_list = suite.settings.tag_list.split(",")


@with_setup
def test_setup_references_setup(suite: Suite) -> None:
    """References setup"""
    _setup(suite)
    content = suite.content
    subject = content.manifests[4]
    assert content.empty_json.digest == EMPTY_JSON_DIGEST

    _push_blob(suite, content.empty_json)
    # Referrers pushed before their subject exists.
    _push_blob(suite, content.ref_blob_a)
    _push_referrer(suite, content.refs_manifest_a_config, subject)
    _push_referrer(suite, content.refs_manifest_a_layer, subject)
    _push_referrer(suite, content.refs_index, subject, INDEX_MEDIA_TYPE)

    # The subject itself.
    _push_blob(suite, content.configs[4])
    _push_blob(suite, content.layer)
    expect_2xx(suite.client.put_manifest(TEST_TAG_NAME, subject.content))

    # Referrers pushed after their subject.
    _push_blob(suite, content.ref_blob_b)
    _push_referrer(suite, content.refs_manifest_b_config, subject)
    _push_referrer(suite, content.refs_manifest_b_layer, subject)

    # A referrer whose subject is never pushed.
    _push_referrer(suite, content.refs_manifest_c_layer, content.manifests[3])


# Test content discovery endpoints (listing tags)


def test_get_request_to_list_tags_should_yield_200_response(
    suite: Suite, state: DiscoveryState
) -> None:
    """GET request to list tags should yield 200 response"""
    response = suite.client.request("GET", "/v2/<name>/tags/list")
    expect_status(response, 200)
    state.tag_list = tag_list(response)
    state.num_tags = len(state.tag_list)


def test_get_number_of_tags_should_be_limitable_by_n_query_parameter(
    suite: Suite, state: DiscoveryState
) -> None:
    """GET number of tags should be limitable by `n` query parameter"""
    num_results = state.num_tags // 2
    response = suite.client.request("GET", "/v2/<name>/tags/list", params={"n": str(num_results)})
    expect_status(response, 200)
    state.tag_list = tag_list(response)
    assert len(state.tag_list) == num_results, f"{state.tag_list} for n={num_results}"


def test_get_start_of_tag_is_set_by_last_query_parameter(
    suite: Suite, state: DiscoveryState
) -> None:
    """GET start of tag is set by `last` query parameter"""
    num_results = state.num_tags // 2
    response = suite.client.request("GET", "/v2/<name>/tags/list", params={"n": str(num_results)})
    state.tag_list = tag_list(response)
    last = nth(state.tag_list, num_results - 1)
    response = suite.client.request(
        "GET", "/v2/<name>/tags/list", params={"n": str(num_results), "last": last}
    )
    expect_status(response, 200)
    # As in the Go suite, these look at the first page, not at the page after `last`.
    assert len(state.tag_list) <= num_results
    assert last in state.tag_list


def _all_tags(suite: Suite) -> list[str]:
    response = suite.client.request("GET", "/v2/<name>/tags/list")
    expect_status(response, 200)
    return tag_list(response)


def _check_tag_page(suite: Suite, params: dict[str, str], tags: list[str], start: int) -> None:
    """The page of ``tags`` (the whole list) that starts at ``start``, for ``params``: exactly
    the next ``n`` tags (all the rest without ``n``), and a Link to the next page iff there
    are tags after it; following that Link gives the tags that come next."""
    n = int(params.get("n", len(tags)))
    expected, after = tags[start : start + n], tags[start + n :]
    response = suite.client.request("GET", "/v2/<name>/tags/list", params=params)
    expect_status(response, 200)
    assert tag_list(response) == expected, (
        f"strict: tags {tag_list(response)} for {params}, expected {expected}\n"
        f"  spec: {strict.SPEC_TAGS_PAGE}"
    )
    more = bool(after) and n > 0
    link = strict.next_link(response)
    assert (link is not None) == more, (
        f"strict: Link {response.headers.get('Link')!r} for {params}, "
        f'expected {"a" if more else "no"} rel="next" link (wharf sends one exactly when '
        f"tags follow, though the spec makes it a MAY)\n  spec: {strict.SPEC_TAGS_LINK}"
    )
    if link is not None:
        following = suite.client.request("GET", link)
        expect_status(following, 200)
        page = tag_list(following)
        assert page, f"strict: the Link {link} after {expected} gives no tags"
        assert page == after[: len(page)], f"strict: the Link {link} gives {page}, not {after}"


@pytest.mark.strict
def test_strict_tag_list_is_in_lexical_order(suite: Suite) -> None:
    """Strict: the tag list holds the tags pushed here, in lexical order"""
    tags = _all_tags(suite)
    pushed = {TEST_TAG_NAME, *(f"test{i}" for i in range(4))}
    assert pushed <= set(tags), f"strict: tags {tags} lack some of {sorted(pushed)}"
    assert tags == sorted(tags), f"strict: tags {tags} not in order\n  spec: {strict.SPEC_TAGS}"


@pytest.mark.strict
def test_strict_n_returns_exactly_the_first_n_tags(suite: Suite) -> None:
    """Strict: `n` gives the first n tags, with a Link when there are more (none for n=0)"""
    tags = _all_tags(suite)
    for n in range(len(tags) + 2):
        _check_tag_page(suite, {"n": str(n)}, tags, 0)


@pytest.mark.strict
def test_strict_last_returns_the_tags_after_last(suite: Suite) -> None:
    """Strict: `last` gives the page after that tag, with a Link unless it is the last page"""
    tags = _all_tags(suite)
    for i, last in enumerate(tags):
        _check_tag_page(suite, {"last": last}, tags, i + 1)
        for n in range(1, len(tags) + 1):
            _check_tag_page(suite, {"n": str(n), "last": last}, tags, i + 1)


@pytest.mark.strict
def test_strict_tag_list_of_unknown_repository_is_404_name_unknown(suite: Suite) -> None:
    """Strict: listing the tags of a repository that does not exist is 404 NAME_UNKNOWN"""
    name = f"{suite.settings.namespace}-{uuid.uuid4().hex[:12]}"
    response = suite.client.request("GET", "/v2/<name>/tags/list", name=name)
    strict.check_error(response, 404, "NAME_UNKNOWN")


# Test content discovery endpoints (listing references)


def test_get_request_to_nonexistent_blob_should_result_in_empty_200_response(
    suite: Suite,
) -> None:
    """GET request to nonexistent blob should result in empty 200 response"""
    response = suite.client.request(
        "GET", "/v2/<name>/referrers/<digest>", digest=suite.content.dummy_digest
    )
    assert len(_referrers_index(response)) == 0
    if suite.strict:
        strict.check_referrers(response, _referrers_index(response), [])


def test_get_request_to_existing_blob_should_yield_200(suite: Suite) -> None:
    """GET request to existing blob should yield 200"""
    response = suite.client.request(
        "GET", "/v2/<name>/referrers/<digest>", digest=suite.content.manifests[4].digest
    )
    manifests = _referrers_index(response)
    assert len(manifests) == 5, f"expected 5 referrers, got {manifests}"
    assert manifests[0].get("digest") != manifests[1].get("digest")
    _check_annotations(suite, manifests)
    if suite.strict:
        content = suite.content
        expected = [
            content.refs_manifest_a_config,
            content.refs_manifest_a_layer,
            content.refs_index,
            content.refs_manifest_b_config,
            content.refs_manifest_b_layer,
        ]
        strict.check_referrers(response, manifests, expected)


def test_get_request_to_existing_blob_with_filter_should_yield_200(suite: Suite) -> None:
    """GET request to existing blob with filter should yield 200"""
    response = suite.client.request(
        "GET",
        "/v2/<name>/referrers/<digest>",
        digest=suite.content.manifests[4].digest,
        params={"artifactType": ARTIFACT_TYPE_A},
    )
    manifests = _referrers_index(response)
    # OCI-Filters-Applied says that the artifactType filter was applied.
    if response.headers.get("OCI-Filters-Applied"):
        assert len(manifests) == 2, f"expected 2 filtered referrers, got {manifests}"
        assert response.headers.get("OCI-Filters-Applied") == ARTIFACT_TYPE_FILTER
    else:
        # The Go suite only warns: "filtering by artifact-type is not implemented".
        assert len(manifests) == 5, f"expected 5 unfiltered referrers, got {manifests}"
    _check_annotations(suite, manifests)
    if suite.strict:
        expected = [suite.content.refs_manifest_a_config, suite.content.refs_manifest_a_layer]
        strict.check_referrers(response, manifests, expected, filtered=True)


def test_get_request_to_missing_manifest_should_yield_200(suite: Suite) -> None:
    """GET request to missing manifest should yield 200"""
    response = suite.client.request(
        "GET", "/v2/<name>/referrers/<digest>", digest=suite.content.manifests[3].digest
    )
    manifests = _referrers_index(response)
    assert len(manifests) == 1, f"expected 1 referrer, got {manifests}"
    assert manifests[0].get("digest") == suite.content.refs_manifest_c_layer.digest
    if suite.strict:
        strict.check_referrers(response, manifests, [suite.content.refs_manifest_c_layer])


# Teardown


def _delete_manifests_and_tags(suite: Suite) -> None:
    content = suite.content
    references = [
        content.refs_index.digest,
        content.manifests[2].digest,
        content.manifests[4].digest,
        content.refs_manifest_a_config.digest,
        content.refs_manifest_a_layer.digest,
        TEST_TAG_NAME,
        content.refs_manifest_b_config.digest,
        content.refs_manifest_b_layer.digest,
        content.refs_manifest_c_layer.digest,
    ]
    for reference in references:
        response = suite.client.request("DELETE", "/v2/<name>/manifests/<digest>", digest=reference)
        expect_2xx(response, 405, 404)
        if suite.strict and reference == TEST_TAG_NAME:
            # The tag went with manifests[4], deleted just before.
            strict.check_error(response, 404, "MANIFEST_UNKNOWN")
        elif suite.strict:
            strict.check_accepted(response)


def _delete_referrer_manifests(suite: Suite) -> None:
    content = suite.content
    for blob in (
        content.refs_index,
        content.refs_manifest_a_config,
        content.refs_manifest_a_layer,
        content.manifests[4],
        content.refs_manifest_b_config,
        content.refs_manifest_b_layer,
    ):
        response = suite.client.request(
            "DELETE", "/v2/<name>/manifests/<reference>", reference=blob.digest
        )
        expect_2xx(response, 405, 404)
        if suite.strict:
            # Deleted already, by the teardown of the tests above.
            strict.check_error(response, 404, "MANIFEST_UNKNOWN")


@pytest.mark.only_with(run_content_discovery_setup=True, delete_manifest_before_blobs=True)
def test_teardown_delete_created_manifest_and_associated_tags(suite: Suite) -> None:
    """Delete created manifest & associated tags (when OCI_DELETE_MANIFEST_BEFORE_BLOBS)"""
    run_only_if(suite.settings.delete_manifest_before_blobs)
    _setup(suite)
    _delete_manifests_and_tags(suite)


@with_setup
def test_teardown_delete_config_blob_created_in_tests(suite: Suite) -> None:
    """Delete config blob created in tests"""
    _setup(suite)
    response = suite.client.request(
        "DELETE", "/v2/<name>/blobs/<digest>", digest=suite.content.configs[2].digest
    )
    expect_2xx(response, 405)
    if suite.strict:
        strict.check_accepted(response)


@with_setup
def test_teardown_delete_layer_blob_created_in_setup(suite: Suite) -> None:
    """Delete layer blob created in setup"""
    _setup(suite)
    response = suite.client.request(
        "DELETE", "/v2/<name>/blobs/<digest>", digest=suite.content.layer.digest
    )
    expect_2xx(response, 405)
    if suite.strict:
        strict.check_accepted(response)


@pytest.mark.only_with(run_content_discovery_setup=True, delete_manifest_before_blobs=False)
def test_teardown_delete_created_manifest_and_associated_tags_after_blobs(suite: Suite) -> None:
    """Delete created manifest & associated tags (unless OCI_DELETE_MANIFEST_BEFORE_BLOBS)"""
    run_only_if_not(suite.settings.delete_manifest_before_blobs)
    _setup(suite)
    _delete_manifests_and_tags(suite)


@with_setup
def test_teardown_references_teardown(suite: Suite) -> None:
    """References teardown"""
    _setup(suite)
    content = suite.content
    if suite.settings.delete_manifest_before_blobs:
        _delete_referrer_manifests(suite)
    for blob in (content.configs[4], content.ref_blob_a, content.ref_blob_b, content.empty_json):
        response = suite.client.request("DELETE", "/v2/<name>/blobs/<digest>", digest=blob.digest)
        expect_2xx(response, 405, 404)
        if suite.strict:
            strict.check_accepted(response)
    if not suite.settings.delete_manifest_before_blobs:
        _delete_referrer_manifests(suite)
