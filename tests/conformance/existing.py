"""Content pushed before the suite runs, for the Go suite's modes that use existing content.

With ``OCI_TAG_NAME``, ``OCI_MANIFEST_DIGEST`` and ``OCI_BLOB_DIGEST`` the pull workflow skips
its setup and pulls that image; with ``OCI_TAG_LIST`` content discovery skips its setup and
lists those tags. Against wharf the suite runs both modes too: it pushes the content here
first, then runs the workflow with the variables pointing at it.
"""

from __future__ import annotations

from tests.conformance.content import (
    INDEX_MEDIA_TYPE,
    TEST_TAG_NAME,
    Blob,
    Content,
    build_content,
)
from tests.conformance.fixtures import OciClient, expect_2xx

__all__ = [
    "EXISTING_IMAGE",
    "EXISTING_TAG",
    "EXISTING_TAG_LIST",
    "existing_image_env",
    "push_existing_image",
    "push_existing_tags",
]

EXISTING_TAG = "existing"
EXISTING_TAG_LIST = ("test0", "test1", "test2", "test3")

#: The image that is already in the registry: its configs[0], layer and manifests[0].
EXISTING_IMAGE = build_content()


def existing_image_env() -> dict[str, str]:
    """The variables that point the pull workflow at :data:`EXISTING_IMAGE`."""
    return {
        "OCI_TAG_NAME": EXISTING_TAG,
        "OCI_MANIFEST_DIGEST": EXISTING_IMAGE.manifests[0].digest,
        "OCI_BLOB_DIGEST": EXISTING_IMAGE.configs[0].digest,
    }


def _push_blob(client: OciClient, blob: Blob) -> None:
    expect_2xx(client.push_blob(blob.content, blob.digest))


def _push_manifest(client: OciClient, reference: str, manifest: Blob, media_type: str = "") -> None:
    expect_2xx(client.put_manifest(reference, manifest.content, media_type))


def push_existing_image(client: OciClient, content: Content) -> None:
    """Push :data:`EXISTING_IMAGE` under :data:`EXISTING_TAG`.

    Every config and manifest digest of ``content`` is then the existing one (the Go suite
    replaces them all with ``OCI_BLOB_DIGEST`` and ``OCI_MANIFEST_DIGEST``); their bytes are
    made the existing bytes too, so that what is pulled can be compared with them.
    """
    config, manifest = EXISTING_IMAGE.configs[0], EXISTING_IMAGE.manifests[0]
    _push_blob(client, config)
    _push_blob(client, EXISTING_IMAGE.layer)
    _push_manifest(client, EXISTING_TAG, manifest)
    assert {c.digest for c in content.configs} == {config.digest}
    assert {m.digest for m in content.manifests} == {manifest.digest}
    content.configs = [config] * len(content.configs)
    content.manifests = [manifest] * len(content.manifests)


def push_existing_tags(client: OciClient, content: Content) -> None:
    """Push what the content discovery setup pushes: :data:`EXISTING_TAG_LIST` on
    manifests[2], and the referrers of manifests[4] (tagged) and of manifests[3]."""
    _push_blob(client, content.configs[2])
    _push_blob(client, content.layer)
    for tag in EXISTING_TAG_LIST:
        _push_manifest(client, tag, content.manifests[2])
    for blob in (
        content.empty_json,
        content.ref_blob_a,
        content.ref_blob_b,
        content.configs[4],
    ):
        _push_blob(client, blob)
    _push_manifest(client, TEST_TAG_NAME, content.manifests[4])
    for referrer in (
        content.refs_manifest_a_config,
        content.refs_manifest_a_layer,
        content.refs_manifest_b_config,
        content.refs_manifest_b_layer,
        content.refs_manifest_c_layer,
    ):
        _push_manifest(client, referrer.digest, referrer)
    _push_manifest(client, content.refs_index.digest, content.refs_index, INDEX_MEDIA_TYPE)
