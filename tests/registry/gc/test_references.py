"""Reading references from stored manifests: every format Distribution ever stored, leniently."""

from __future__ import annotations

import json

from wharf.reference import Digest
from wharf.registry.gc.references import read_refs

A, B, C, D = (Digest("sha256", letter * 64) for letter in "abcd")


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def test_image_manifest() -> None:
    refs = read_refs(
        body(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "x/y", "digest": str(A), "size": 1},
                "layers": [{"mediaType": "x/y", "digest": str(B), "size": 1, "urls": ["u"]}],
            }
        )
    )
    assert refs is not None
    assert refs.blobs == {A, B}
    assert refs.children == frozenset()
    assert refs.subject is None


def test_index_children_and_subject() -> None:
    refs = read_refs(
        body(
            {
                "schemaVersion": 2,
                "manifests": [{"digest": str(A)}, {"digest": str(B)}],
                "subject": {"digest": str(C)},
                "annotations": {"digest": "anything at all"},
            }
        )
    )
    assert refs is not None
    assert refs.children == {A, B}
    assert refs.blobs == frozenset()
    assert refs.subject == C
    assert refs.everything == {A, B}


def test_schema1_blob_sums() -> None:
    refs = read_refs(
        body(
            {
                "schemaVersion": 1,
                "name": "library/old",
                "fsLayers": [{"blobSum": str(A)}, {"blobSum": str(B)}, {"blobSum": str(A)}],
                "history": [{"v1Compatibility": "{}"}],
                "signatures": [{"header": {"alg": "ES256"}, "signature": "x"}],
            }
        )
    )
    assert refs is not None
    assert refs.blobs == {A, B}


def test_artifact_manifest_of_a_release_candidate() -> None:
    refs = read_refs(
        body(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
                "blobs": [{"digest": str(A)}],
                "subject": {"digest": str(B)},
            }
        )
    )
    assert refs is not None
    assert (refs.blobs, refs.subject) == ({A}, B)


def test_a_duplicate_key_hides_no_reference() -> None:
    layers = [json.dumps({"digest": str(d)}) for d in (B, C)]
    text = (
        f'{{"schemaVersion": 2, "config": {{"digest": "{A}"}}, '
        f'"layers": [{layers[0]}], "layers": [{layers[1]}]}}'
    )
    refs = read_refs(text.encode())
    assert refs is not None
    assert refs.blobs == {A, B, C}


def test_what_is_not_understood() -> None:
    for unreadable in (
        b"not json",
        b"\xff\xfe",
        b"[]",
        body({"config": {"digest": str(A)}}),  # no schemaVersion
        body({"schemaVersion": 3}),
        body({"schemaVersion": 2, "layers": [{"digest": "sha256:short"}]}),
        body({"schemaVersion": 2, "layers": [{"digest": 7}]}),
        b'{"schemaVersion": 2, "subject": {"digest": "%s"}, "subject": {"digest": "%s"}}'
        % (str(A).encode(), str(B).encode()),
        b"[" * 100_000,
    ):
        assert read_refs(unreadable) is None, unreadable[:80]
