"""Test content for the conformance suite, built the way the Go suite's ``setup.go`` builds it.

JSON documents are serialised like Go's ``json.MarshalIndent(v, "", "\\t")`` with the field
order of the suite's ``image.go`` types, so that manifests have the same shape (including the
``data`` and ``newUnspecifiedField`` descriptor fields that test the handling of unknown
fields) and digests are computed over exactly the bytes that are sent.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import secrets
import tarfile
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ARTIFACT_TYPE_A",
    "ARTIFACT_TYPE_B",
    "ARTIFACT_TYPE_FILTER",
    "ARTIFACT_TYPE_INDEX",
    "EMPTY_JSON_DIGEST",
    "EMPTY_LAYER_TEST_TAG",
    "ERROR_CODES",
    "INDEX_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "NONEXISTENT_MANIFEST",
    "TEST_ANNOTATION_KEY",
    "TEST_TAG_NAME",
    "Blob",
    "ChunkedBlob",
    "Content",
    "build_content",
    "sha256_digest",
]

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY_JSON_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

TEST_TAG_NAME = "tagtest0"
EMPTY_LAYER_TEST_TAG = "emptylayer"
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
INVALID_MANIFEST_CONTENT = b"blablabla"

ARTIFACT_TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
ARTIFACT_TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
ARTIFACT_TYPE_INDEX = "application/vnd.food.stand"
ARTIFACT_TYPE_FILTER = "artifactType"
TEST_ANNOTATION_KEY = "org.opencontainers.conformance.test"

ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "MANIFEST_UNVERIFIED",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "TAG_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
    }
)

#: The Go suite makes one config and one manifest per workflow bit; indices 0-4 are used.
NUM_WORKFLOW_BLOBS = 5

_AUTHOR_LETTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"
_LAYER_FILE_TEXT = b"you bothered to find out what was in here. Congratulations!\n"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def go_json(document: Any) -> bytes:
    """Serialise like Go's ``json.MarshalIndent(v, "", "\\t")`` (key order as given)."""
    return json.dumps(document, indent="\t", ensure_ascii=True).encode()


@dataclass(frozen=True)
class Blob:
    """Bytes to push and the digest to push them under (overridable from the environment)."""

    content: bytes
    digest: str

    @property
    def length(self) -> str:
        return str(len(self.content))

    @classmethod
    def of(cls, content: bytes) -> Blob:
        return cls(content, sha256_digest(content))


@dataclass
class ChunkedBlob:
    """A blob pushed in two chunks; rebuilt larger when the registry asks for bigger chunks."""

    data: bytes
    digest: str
    chunk1: bytes
    chunk2: bytes
    chunk1_range: str
    chunk2_range: str

    @classmethod
    def random(cls, size: int, seed: int) -> ChunkedBlob:
        data = random.Random(seed).randbytes(size)
        split = size // 2 + 1
        return cls(
            data=data,
            digest=sha256_digest(data),
            chunk1=data[:split],
            chunk2=data[split:],
            chunk1_range=f"0-{split - 1}",
            chunk2_range=f"{split}-{size - 1}",
        )


def descriptor(
    media_type: str,
    content: bytes,
    *,
    digest: str | None = None,
    data: bytes | None = None,
    new_unspecified_field: bytes | None = None,
) -> dict[str, Any]:
    """A descriptor in the field order of the Go suite's ``descriptor`` type."""
    document: dict[str, Any] = {
        "mediaType": media_type,
        "digest": digest if digest is not None else sha256_digest(content),
        "size": len(content),
    }
    if data:
        document["data"] = base64.b64encode(data).decode()
    # Not omitempty in Go: a nil []byte is written as null.
    document["newUnspecifiedField"] = (
        base64.b64encode(new_unspecified_field).decode() if new_unspecified_field else None
    )
    return document


def image_manifest(
    *,
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    media_type: str | None = MANIFEST_MEDIA_TYPE,
    artifact_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    document: dict[str, Any] = {"schemaVersion": 2}
    if media_type:
        document["mediaType"] = media_type
    if artifact_type:
        document["artifactType"] = artifact_type
    document["config"] = config
    document["layers"] = layers
    if subject is not None:
        document["subject"] = subject
    if annotations:
        document["annotations"] = dict(sorted(annotations.items()))
    return go_json(document)


def image_index(
    *,
    manifests: list[dict[str, Any]],
    artifact_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE}
    if artifact_type:
        document["artifactType"] = artifact_type
    document["manifests"] = manifests
    if subject is not None:
        document["subject"] = subject
    if annotations:
        document["annotations"] = dict(sorted(annotations.items()))
    return go_json(document)


def layer_tarball() -> bytes:
    """A small gzipped tarball holding one text file (reproducible: fixed names and times)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("test.txt")
        info.size = len(_LAYER_FILE_TEXT)
        info.mode = 0o644
        info.mtime = 0
        tar.addfile(info, io.BytesIO(_LAYER_FILE_TEXT))
    return gzip.compress(raw.getvalue(), mtime=0)


def random_config(author: str) -> bytes:
    return go_json(
        {
            "author": author,
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    )


@dataclass
class Content:
    """Everything the four workflows push, pull and compare against."""

    configs: list[Blob]
    manifests: list[Blob]
    layer: Blob
    empty_layer_manifest: Blob
    blob_a: Blob
    chunked: ChunkedBlob
    empty_json: Blob
    ref_blob_a: Blob
    ref_blob_b: Blob
    refs_manifest_a_config: Blob
    refs_manifest_b_config: Blob
    refs_manifest_a_layer: Blob
    refs_manifest_b_layer: Blob
    refs_manifest_c_layer: Blob
    refs_index: Blob
    seed: int
    dummy_digest: str = sha256_digest(b"hello world")
    invalid_manifest: bytes = INVALID_MANIFEST_CONTENT
    annotation_values: dict[str, str] = field(default_factory=dict)

    def rebuild_chunked(self, size: int) -> None:
        """Rebuild the chunked blob (the Go suite does this for ``OCI-Chunk-Min-Length``)."""
        self.chunked = ChunkedBlob.random(size, self.seed + 2)


def build_content(
    *, seed: int | None = None, blob_digest: str = "", manifest_digest: str = ""
) -> Content:
    """Build the test content; ``blob_digest``/``manifest_digest`` override every digest the
    way ``OCI_BLOB_DIGEST``/``OCI_MANIFEST_DIGEST`` do in the Go suite."""
    if seed is None:
        seed = secrets.randbits(63)

    # A random author makes each config, and so each manifest, unique to this run.
    configs = []
    for _ in range(NUM_WORKFLOW_BLOBS):
        author = "".join(secrets.choice(_AUTHOR_LETTERS) for _ in range(16))
        content = random_config(author)
        configs.append(Blob(content, blob_digest or sha256_digest(content)))

    layer = Blob.of(layer_tarball())
    layers = [descriptor(LAYER_MEDIA_TYPE, layer.content)]

    manifests = []
    for config in configs:
        content = image_manifest(
            config=descriptor(
                CONFIG_MEDIA_TYPE,
                config.content,
                digest=config.digest,
                data=config.content,
                new_unspecified_field=b"hello world",
            ),
            layers=layers,
        )
        manifests.append(Blob(content, manifest_digest or sha256_digest(content)))

    # Pushed by the push workflow: no mediaType field and no layers at all.
    empty_layer_manifest = Blob.of(
        image_manifest(
            media_type=None,
            config=descriptor(
                CONFIG_MEDIA_TYPE,
                configs[1].content,
                digest=configs[1].digest,
                data=configs[1].content,
                new_unspecified_field=b"hello world",
            ),
            layers=[],
        )
    )

    blob_a = Blob.of(random.Random(seed + 1).randbytes(42))
    chunked = ChunkedBlob.random(42, seed + 2)

    empty_json = Blob.of(b"{}")
    empty_json_descriptor = descriptor(EMPTY_JSON_MEDIA_TYPE, empty_json.content)
    ref_blob_a = Blob.of(b"NHL Peanut Butter on my NHL bagel")
    ref_blob_b = Blob.of(b"NBA Strawberry Jam on my NBA croissant")

    subject = descriptor(MANIFEST_MEDIA_TYPE, manifests[4].content)
    annotation_values: dict[str, str] = {}

    def referrer(
        *,
        config: dict[str, Any],
        layers: list[dict[str, Any]],
        artifact_type: str | None = None,
        subject: dict[str, Any] = subject,
        annotation: str | None = None,
    ) -> Blob:
        blob = Blob.of(
            image_manifest(
                artifact_type=artifact_type,
                config=config,
                layers=layers,
                subject=subject,
                annotations={TEST_ANNOTATION_KEY: annotation} if annotation else None,
            )
        )
        if annotation:
            annotation_values[blob.digest] = annotation
        return blob

    # Artifacts whose type is the config media type.
    refs_manifest_a_config = referrer(
        config=descriptor(ARTIFACT_TYPE_A, ref_blob_a.content),
        layers=[empty_json_descriptor],
        annotation="test config a",
    )
    refs_manifest_b_config = referrer(
        config=descriptor(ARTIFACT_TYPE_B, ref_blob_b.content),
        layers=[empty_json_descriptor],
        annotation="test config b",
    )
    # Artifacts with an artifactType field and the empty JSON config.
    refs_manifest_a_layer = referrer(
        artifact_type=ARTIFACT_TYPE_A,
        config=empty_json_descriptor,
        layers=[descriptor(ARTIFACT_TYPE_A, ref_blob_a.content)],
        annotation="test layer a",
    )
    refs_manifest_b_layer = referrer(
        artifact_type=ARTIFACT_TYPE_B,
        config=empty_json_descriptor,
        layers=[descriptor(ARTIFACT_TYPE_B, ref_blob_b.content)],
        annotation="test layer b",
    )
    # Like B, but its subject (manifests[3]) is never pushed in this workflow.
    refs_manifest_c_layer = referrer(
        artifact_type=ARTIFACT_TYPE_B,
        config=empty_json_descriptor,
        layers=[descriptor(ARTIFACT_TYPE_B, ref_blob_b.content)],
        subject=descriptor(MANIFEST_MEDIA_TYPE, manifests[3].content),
    )
    refs_index = Blob.of(
        image_index(
            artifact_type=ARTIFACT_TYPE_INDEX,
            manifests=[
                descriptor(MANIFEST_MEDIA_TYPE, refs_manifest_a_config.content),
                descriptor(MANIFEST_MEDIA_TYPE, refs_manifest_a_layer.content),
            ],
            subject=subject,
            annotations={TEST_ANNOTATION_KEY: "test index"},
        )
    )
    annotation_values[refs_index.digest] = "test index"

    return Content(
        configs=configs,
        manifests=manifests,
        layer=layer,
        empty_layer_manifest=empty_layer_manifest,
        blob_a=blob_a,
        chunked=chunked,
        empty_json=empty_json,
        ref_blob_a=ref_blob_a,
        ref_blob_b=ref_blob_b,
        refs_manifest_a_config=refs_manifest_a_config,
        refs_manifest_b_config=refs_manifest_b_config,
        refs_manifest_a_layer=refs_manifest_a_layer,
        refs_manifest_b_layer=refs_manifest_b_layer,
        refs_manifest_c_layer=refs_manifest_c_layer,
        refs_index=refs_index,
        seed=seed,
        annotation_values=annotation_values,
    )
