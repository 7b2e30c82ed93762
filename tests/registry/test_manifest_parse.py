"""Tests for wharf.registry.manifest_parse: every rule in its docstring, then fuzzing."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wharf.errors import DigestInvalid, ManifestInvalid, RegistryError, SizeInvalid
from wharf.reference import Digest
from wharf.registry import media
from wharf.registry.manifest_parse import (
    MAX_DEPTH,
    MAX_MANIFEST_SIZE,
    Descriptor,
    ParsedManifest,
    digest_of,
    parse_manifest,
)

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64
D = "sha512:" + "d" * 128


def desc(media_type: str, digest: str = A, size: int = 10, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def oci_manifest(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": desc(media.OCI_CONFIG, A, 2),
        "layers": [desc(media.OCI_LAYER_GZIP, B, 100), desc(media.OCI_LAYER_ZSTD, C, 200)],
    }
    doc.update(fields)
    return doc


def oci_index(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media.OCI_INDEX,
        "manifests": [
            desc(media.OCI_MANIFEST, A, 500, platform={"architecture": "amd64", "os": "linux"}),
            desc(media.OCI_MANIFEST, B, 600, platform={"architecture": "arm64", "os": "linux"}),
        ],
    }
    doc.update(fields)
    return doc


def docker_manifest(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media.DOCKER_MANIFEST,
        "config": desc(media.DOCKER_CONFIG, A, 2),
        "layers": [desc(media.DOCKER_LAYER_GZIP, B, 100)],
    }
    doc.update(fields)
    return doc


def docker_list(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media.DOCKER_MANIFEST_LIST,
        "manifests": [
            desc(media.DOCKER_MANIFEST, A, 500, platform={"architecture": "amd64", "os": "linux"})
        ],
    }
    doc.update(fields)
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def parse(doc: Any, content_type: str | None = None) -> ParsedManifest:
    return parse_manifest(encode(doc), content_type)


def invalid(doc: Any, content_type: str | None = None) -> ManifestInvalid:
    with pytest.raises(ManifestInvalid) as info:
        parse(doc, content_type)
    return info.value


def invalid_body(body: bytes, content_type: str | None = None) -> ManifestInvalid:
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(body, content_type)
    return info.value


def field_of(error: RegistryError) -> Any:
    assert isinstance(error.detail, dict)
    return error.detail.get("field")


# --- digests ------------------------------------------------------------------------------


def test_digest_of_sha256_and_sha512() -> None:
    body = b'{"x": 1}'
    assert digest_of(body) == Digest("sha256", hashlib.sha256(body).hexdigest())
    assert digest_of(body, "sha512") == Digest("sha512", hashlib.sha512(body).hexdigest())


@pytest.mark.parametrize("algorithm", ["md5", "sha384", "SHA256", ""])
def test_digest_of_refuses_unsupported_algorithms(algorithm: str) -> None:
    with pytest.raises(DigestInvalid):
        digest_of(b"{}", algorithm)


def test_parse_digests_the_exact_bytes() -> None:
    compact = json.dumps(oci_manifest(), separators=(",", ":")).encode()
    pretty = json.dumps(oci_manifest(), indent=3).encode() + b"\n"
    one, two = parse_manifest(compact, None), parse_manifest(pretty, None)
    assert one.digest == digest_of(compact)
    assert two.digest == digest_of(pretty)
    assert one.digest != two.digest
    assert (one.size, two.size) == (len(compact), len(pretty))


def test_parse_with_sha512() -> None:
    body = encode(oci_manifest())
    parsed = parse_manifest(body, None, "sha512")
    assert parsed.digest == Digest("sha512", hashlib.sha512(body).hexdigest())


def test_parse_refuses_an_unsupported_digest_algorithm() -> None:
    with pytest.raises(DigestInvalid):
        parse_manifest(encode(oci_manifest()), None, "sha384")


# --- the body -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"\xff\xfe{}",
        b'{"schemaVersion": 2, "x": "\xc3"}',
        b'\xef\xbb\xbf{"schemaVersion": 2}',  # a UTF-8 byte order mark
        b"{",
        b'{"a": 1} trailing',
        b"{'single': 'quotes'}",
        b'{"a": 1,}',
        b'{"a": "tab\tinside"}',  # control characters must be escaped
        b"[]",
        b'"a string"',
        b"2",
        b"null",
        b"true",
    ],
)
def test_refuses_what_is_not_a_utf8_json_object(body: bytes) -> None:
    invalid_body(body)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_refuses_non_json_number_constants(constant: bytes) -> None:
    error = invalid_body(b'{"schemaVersion": 2, "x": ' + constant + b"}")
    assert constant.decode().lstrip("-") in error.detail["reason"]


def test_refuses_an_integer_past_pythons_digit_limit() -> None:
    invalid_body(b'{"schemaVersion": 2, "x": ' + b"9" * 5000 + b"}")


@pytest.mark.parametrize(
    "body",
    [
        b'{"schemaVersion": 2, "schemaVersion": 2}',
        b'{"schemaVersion": 2, "layers": [], "layers": []}',
        b'{"schemaVersion": 2, "annotations": {"a": "1", "a": "2"}}',
        b'{"schemaVersion": 2, "x": [{"k": 1, "k": 1}]}',
    ],
)
def test_refuses_duplicate_keys_anywhere(body: bytes) -> None:
    error = invalid_body(body)
    assert "duplicate key" in error.detail["reason"]


def test_refuses_lone_surrogates_in_values_and_keys() -> None:
    value = encode(oci_manifest(annotations={"a": "x"})).replace(b'"x"', b'"\\ud800"')
    assert "surrogate" in invalid_body(value).detail["reason"]
    key = encode(oci_manifest(annotations={"a": "x"})).replace(b'"a"', b'"\\udfff"')
    assert "surrogate" in invalid_body(key).detail["reason"]
    # The detail of a duplicate key that is a lone surrogate must still be encodable.
    error = invalid_body(b'{"\\ud800": 1, "\\ud800": 2}')
    json.dumps(error.as_dict(), ensure_ascii=False).encode()


def test_accepts_escaped_surrogate_pairs_and_non_ascii() -> None:
    body = encode(oci_manifest(annotations={"a": "x", "b": "é"})).replace(
        b'"x"', b'"\\ud83d\\ude00"'
    )
    parsed = parse_manifest(body, None)
    assert parsed.annotations == {"a": "\U0001f600", "b": "é"}


def _nested(depth: int) -> bytes:
    # The document itself is level 1; `depth` levels in total.
    return (
        b'{"schemaVersion": 2, "mediaType": "x/y", "n": '
        + b"[" * (depth - 1)
        + b"]" * (depth - 1)
        + b"}"
    )


def test_nesting_limit() -> None:
    # MAX_DEPTH levels parse as far as the media type check; one more is refused for depth.
    assert invalid_body(_nested(MAX_DEPTH)).text == "unsupported manifest media type"
    assert "nested deeper" in invalid_body(_nested(MAX_DEPTH + 1)).detail["reason"]


def test_very_deep_nesting_is_refused_not_a_crash() -> None:
    for opener in (b"[", b'{"a":'):
        assert "nested deeper" in invalid_body(opener * 100_000).detail["reason"]


def test_max_size() -> None:
    body = encode(oci_manifest())
    assert parse_manifest(body, None, max_size=len(body)).size == len(body)
    with pytest.raises(SizeInvalid) as info:
        parse_manifest(body, None, max_size=len(body) - 1)
    assert info.value.http_status == 413
    big = encode(oci_manifest(annotations={"pad": "x" * MAX_MANIFEST_SIZE}))
    with pytest.raises(SizeInvalid):
        parse_manifest(big, None)
    assert parse_manifest(big, None, max_size=None).size == len(big)


# --- media type -----------------------------------------------------------------------------


def test_media_type_from_the_body() -> None:
    assert parse(oci_manifest()).media_type == media.OCI_MANIFEST
    assert parse(oci_index()).media_type == media.OCI_INDEX
    assert parse(docker_manifest()).media_type == media.DOCKER_MANIFEST
    assert parse(docker_list()).media_type == media.DOCKER_MANIFEST_LIST


def test_media_type_from_the_content_type() -> None:
    doc = oci_manifest()
    del doc["mediaType"]
    assert parse(doc, media.OCI_MANIFEST).media_type == media.OCI_MANIFEST
    index = oci_index()
    del index["mediaType"]
    assert parse(index, media.OCI_INDEX).media_type == media.OCI_INDEX


@pytest.mark.parametrize(
    "content_type",
    [
        media.OCI_MANIFEST,
        media.OCI_MANIFEST + "; charset=utf-8",
        "  Application/VND.OCI.Image.Manifest.v1+JSON ; q=1",
        None,
        "",
        " ; charset=utf-8",
    ],
)
def test_content_type_parameters_case_and_absence(content_type: str | None) -> None:
    assert parse(oci_manifest(), content_type).media_type == media.OCI_MANIFEST


def test_body_and_content_type_must_agree() -> None:
    error = invalid(oci_manifest(), media.OCI_INDEX)
    assert field_of(error) == "mediaType"
    assert "does not match" in error.detail["reason"]
    invalid(oci_manifest(), media.DOCKER_MANIFEST)
    invalid(docker_manifest(), media.OCI_MANIFEST)
    # A generic JSON type is a disagreement too: Distribution v3 refuses it as well.
    invalid(oci_manifest(), "application/json")


def test_without_media_type_or_content_type_the_fields_decide() -> None:
    manifest = oci_manifest()
    del manifest["mediaType"]
    assert parse(manifest).media_type == media.OCI_MANIFEST
    only_config = {"schemaVersion": 2, "config": desc(media.OCI_CONFIG), "layers": []}
    assert parse(only_config).media_type == media.OCI_MANIFEST
    index = oci_index()
    del index["mediaType"]
    assert parse(index).media_type == media.OCI_INDEX
    assert parse({"schemaVersion": 2, "manifests": []}).media_type == media.OCI_INDEX


def test_without_any_hint_the_type_is_unknown() -> None:
    invalid({"schemaVersion": 2})
    invalid({"schemaVersion": 2, "manifests": None, "config": None})


def test_empty_media_type_counts_as_absent() -> None:
    assert parse(oci_manifest(mediaType="")).media_type == media.OCI_MANIFEST
    assert parse(oci_manifest(mediaType=None), media.OCI_MANIFEST).media_type == media.OCI_MANIFEST


@pytest.mark.parametrize("value", [1, True, ["x"], {"a": "b"}])
def test_media_type_must_be_a_string(value: Any) -> None:
    assert field_of(invalid(oci_manifest(mediaType=value))) == "mediaType"


@pytest.mark.parametrize(
    ("declared", "content_type"),
    [
        ("application/vnd.example+json", None),
        (None, "application/vnd.example+json"),
        (None, "application/json"),
        (None, "application/octet-stream"),
        (None, "garbage"),
        (media.OCI_CONFIG, None),
        (media.OCI_LAYER_GZIP, None),
        ("APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON", None),  # the body is compared exactly
    ],
)
def test_unsupported_media_types(declared: str | None, content_type: str | None) -> None:
    doc = oci_manifest(mediaType=declared)
    error = invalid(doc, content_type)
    assert error.text == "unsupported manifest media type"
    assert field_of(error) == "mediaType"


@pytest.mark.parametrize("artifact", [media.OCI_ARTIFACT_MANIFEST, media.ORAS_ARTIFACT_MANIFEST])
def test_artifact_manifests_are_refused(artifact: str) -> None:
    doc = {
        "mediaType": artifact,
        "artifactType": "application/vnd.example.sbom",
        "blobs": [desc("application/json")],
    }
    for body_doc, content_type in ((doc, None), ({**doc, "mediaType": None}, artifact)):
        error = invalid(body_doc, content_type)
        assert error.text == "unsupported manifest media type"
        assert "image manifest with artifactType" in error.detail["reason"]


def test_docker_formats_require_media_type_in_the_body() -> None:
    manifest = docker_manifest()
    del manifest["mediaType"]
    assert "required" in invalid(manifest, media.DOCKER_MANIFEST).detail["reason"]
    manifest_list = docker_list()
    del manifest_list["mediaType"]
    invalid(manifest_list, media.DOCKER_MANIFEST_LIST)


# --- schemaVersion --------------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, 0, 3, "2", 2.0, True, [2]])
def test_schema_version_must_be_two(version: Any) -> None:
    doc = oci_manifest(schemaVersion=version)
    if version is None:
        del doc["schemaVersion"]
    assert field_of(invalid(doc)) == "schemaVersion"


SCHEMA1 = {
    "schemaVersion": 1,
    "name": "library/x",
    "tag": "latest",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": A}],
    "history": [{"v1Compatibility": "{}"}],
}


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        (SCHEMA1, None),
        (SCHEMA1, media.DOCKER_SCHEMA1),
        (SCHEMA1, media.DOCKER_SCHEMA1_SIGNED),
        ({**SCHEMA1, "signatures": [{"header": {}, "signature": "x"}]}, None),
        (oci_manifest(mediaType=media.DOCKER_SCHEMA1), None),
        (oci_manifest(mediaType=None), media.DOCKER_SCHEMA1_SIGNED),
        (oci_manifest(), media.DOCKER_SCHEMA1),
    ],
)
def test_schema1_is_refused_with_its_own_message(doc: Any, content_type: str | None) -> None:
    error = invalid(doc, content_type)
    assert error.text == "manifest schema 1 is not supported"
    assert "schema 1" in error.detail["reason"]


# --- manifest or index: never both ----------------------------------------------------------


def test_image_manifest_with_manifests_is_refused() -> None:
    error = invalid(oci_manifest(manifests=[]))
    assert field_of(error) == "manifests"
    invalid(docker_manifest(manifests=[]))
    # null is what Go's omitempty treats as absent
    assert parse(oci_manifest(manifests=None)).media_type == media.OCI_MANIFEST


@pytest.mark.parametrize("key", ["config", "layers"])
def test_index_with_config_or_layers_is_refused(key: str) -> None:
    value = desc(media.OCI_CONFIG) if key == "config" else []
    assert field_of(invalid(oci_index(**{key: value}))) == key
    invalid(docker_list(**{key: value}))
    assert parse(oci_index(**{key: None})).media_type == media.OCI_INDEX


def test_fields_of_both_kinds_without_a_media_type_are_refused() -> None:
    invalid({"schemaVersion": 2, "manifests": [], "config": desc(media.OCI_CONFIG), "layers": []})


# --- image manifests ------------------------------------------------------------------------


def test_oci_image_manifest() -> None:
    parsed = parse(oci_manifest())
    config = Descriptor(media.OCI_CONFIG, Digest.parse(A), 2)
    assert parsed.config == config
    assert parsed.blobs == (
        config,
        Descriptor(media.OCI_LAYER_GZIP, Digest.parse(B), 100),
        Descriptor(media.OCI_LAYER_ZSTD, Digest.parse(C), 200),
    )
    assert parsed.manifests == ()
    assert parsed.external == ()
    assert parsed.references() == parsed.blobs
    assert parsed.subject is None
    assert parsed.annotations is None
    assert parsed.artifact_type == media.OCI_CONFIG


def test_artifact_with_empty_layers_and_empty_config() -> None:
    doc = oci_manifest(
        config=desc(media.OCI_EMPTY, A, 2),
        layers=[],
        artifactType="application/vnd.example.sbom.v1",
    )
    parsed = parse(doc)
    assert parsed.blobs == (Descriptor(media.OCI_EMPTY, Digest.parse(A), 2),)
    assert parsed.artifact_type == "application/vnd.example.sbom.v1"


def test_empty_config_without_artifact_type_is_accepted() -> None:
    # image-spec asks for artifactType here, but neither Distribution nor zot enforces it.
    parsed = parse(oci_manifest(config=desc(media.OCI_EMPTY, A, 2), layers=[]))
    assert parsed.artifact_type == media.OCI_EMPTY


@pytest.mark.parametrize("config", [None, "missing", 1, "x", [desc(media.OCI_CONFIG)]])
def test_config_is_a_required_descriptor(config: Any) -> None:
    doc = oci_manifest(config=config)
    if config == "missing":
        del doc["config"]
    assert field_of(invalid(doc)) == "config"


@pytest.mark.parametrize("layers", [None, "missing", {}, desc(media.OCI_LAYER), "x"])
def test_layers_is_a_required_array(layers: Any) -> None:
    doc = oci_manifest(layers=layers)
    if layers == "missing":
        del doc["layers"]
    assert field_of(invalid(doc)) == "layers"


def test_layer_descriptors_are_objects() -> None:
    assert field_of(invalid(oci_manifest(layers=[A]))) == "layers[0]"
    assert field_of(invalid(oci_manifest(layers=[desc(media.OCI_LAYER), None]))) == "layers[1]"


# --- descriptors ----------------------------------------------------------------------------

BAD_MEDIA_TYPES = [
    "missing",
    None,
    1,
    "",
    "noslash",
    "/subtype",
    "type/",
    "type/sub/type",
    "text/plain; charset=utf-8",
    "type /subtype",
    "a/" + "b" * 128,
    "-type/subtype",
]


@pytest.mark.parametrize("value", BAD_MEDIA_TYPES)
def test_descriptor_media_type(value: Any) -> None:
    layer = desc(value)
    if value == "missing":
        del layer["mediaType"]
    error = invalid(oci_manifest(layers=[desc(media.OCI_LAYER), layer]))
    assert field_of(error) == "layers[1].mediaType"


@pytest.mark.parametrize(
    "value",
    ["application/vnd.oci.image.layer.v1.tar", "a/b", "A1/x!#$&^_.+-y", "a/" + "b" * 127],
)
def test_descriptor_media_type_accepted(value: str) -> None:
    assert parse(oci_manifest(layers=[desc(value)])).blobs[1].media_type == value


@pytest.mark.parametrize("value", ["missing", None, 1, ["sha256:x"], {"a": "b"}])
def test_descriptor_digest_must_be_a_string(value: Any) -> None:
    layer = desc(media.OCI_LAYER)
    if value == "missing":
        del layer["digest"]
    else:
        layer["digest"] = value
    assert field_of(invalid(oci_manifest(layers=[layer]))) == "layers[0].digest"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        "sha256:abc",
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 65,
        "md5:" + "a" * 32,
        "sha384:" + "a" * 96,
        ":" + "a" * 64,
        "SHA256:" + "a" * 64,
        "sha256:" + "a" * 63 + " ",
    ],
)
def test_malformed_descriptor_digest_is_digest_invalid(value: str) -> None:
    with pytest.raises(DigestInvalid) as info:
        parse(oci_manifest(layers=[desc(media.OCI_LAYER, value)]))
    assert info.value.detail == {"digest": value, "field": "layers[0].digest"}


def test_sha512_descriptor_digest() -> None:
    assert parse(oci_manifest(layers=[desc(media.OCI_LAYER, D)])).blobs[1].digest == Digest.parse(D)


@pytest.mark.parametrize("value", ["missing", None, -1, 1.0, 1.5, "1", True, False, 2**63, [1]])
def test_descriptor_size(value: Any) -> None:
    config = desc(media.OCI_CONFIG)
    if value == "missing":
        del config["size"]
    else:
        config["size"] = value
    assert field_of(invalid(oci_manifest(config=config))) == "config.size"


@pytest.mark.parametrize("value", [0, 1, 2**63 - 1])
def test_descriptor_size_accepted(value: int) -> None:
    assert parse(oci_manifest(config=desc(media.OCI_CONFIG, A, value))).config == Descriptor(
        media.OCI_CONFIG, Digest.parse(A), value
    )


def test_descriptor_optional_properties() -> None:
    layer = desc(
        media.OCI_LAYER,
        artifactType="application/vnd.example",
        annotations={"k": "v"},
        urls=["https://example.com/layer"],
        data="e30=",
        somethingNew={"ignored": True},
    )
    parsed = parse(oci_manifest(layers=[layer])).blobs[1]
    assert parsed.artifact_type == "application/vnd.example"
    assert parsed.annotations == {"k": "v"}
    assert parsed.urls == ("https://example.com/layer",)
    assert parsed.platform is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("artifactType", 1),
        ("artifactType", "noslash"),
        ("annotations", []),
        ("annotations", {"k": 1}),
        ("annotations", {"k": None}),
        ("annotations", "k=v"),
        ("urls", "https://example.com"),
        ("urls", [1]),
        ("urls", {"a": "b"}),
        ("platform", "linux/amd64"),
    ],
)
def test_descriptor_optional_properties_are_checked(key: str, value: Any) -> None:
    error = invalid(oci_manifest(config=desc(media.OCI_CONFIG, **{key: value})))
    assert field_of(error) == f"config.{key}"


def test_null_optional_properties_count_as_absent() -> None:
    config = desc(media.OCI_CONFIG, artifactType=None, annotations=None, urls=None, platform=None)
    assert parse(oci_manifest(config=config)).config == Descriptor(
        media.OCI_CONFIG, Digest.parse(A), 10
    )


def test_unknown_fields_are_ignored() -> None:
    parsed = parse(oci_manifest(future={"a": [1, 2, {"b": None}]}, blobs="not ours"))
    assert len(parsed.blobs) == 3


# --- layers outside the registry ------------------------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "layer_type"),
    [
        (oci_manifest, media.OCI_LAYER_NONDISTRIBUTABLE),
        (oci_manifest, media.OCI_LAYER_NONDISTRIBUTABLE_GZIP),
        (oci_manifest, media.OCI_LAYER_NONDISTRIBUTABLE_ZSTD),
        (docker_manifest, media.DOCKER_FOREIGN_LAYER),
        (docker_manifest, media.DOCKER_FOREIGN_LAYER_GZIP),
        (oci_manifest, media.DOCKER_FOREIGN_LAYER_GZIP),
    ],
)
def test_external_layers_with_urls_need_not_exist(manifest: Any, layer_type: str) -> None:
    external = desc(layer_type, C, 5, urls=["https://mcr.microsoft.com/v2/x/blobs/sha256:c"])
    parsed = parse(manifest(layers=[desc(media.OCI_LAYER_GZIP, B), external]))
    assert [d.digest for d in parsed.blobs] == [Digest.parse(A), Digest.parse(B)]
    assert [d.digest for d in parsed.external] == [Digest.parse(C)]
    assert parsed.external[0].urls == ("https://mcr.microsoft.com/v2/x/blobs/sha256:c",)
    assert Digest.parse(C) not in [d.digest for d in parsed.references()]


@pytest.mark.parametrize("urls", [None, []])
def test_nondistributable_layer_without_urls_is_an_ordinary_blob(urls: Any) -> None:
    layer = desc(media.OCI_LAYER_NONDISTRIBUTABLE_GZIP, C, urls=urls)
    parsed = parse(oci_manifest(layers=[layer]))
    assert parsed.external == ()
    assert parsed.blobs[1].digest == Digest.parse(C)


def test_ordinary_layer_with_urls_must_still_exist() -> None:
    layer = desc(media.OCI_LAYER_GZIP, C, urls=["https://example.com/c"])
    parsed = parse(oci_manifest(layers=[layer]))
    assert parsed.external == ()
    assert parsed.blobs[1].urls == ("https://example.com/c",)


@pytest.mark.parametrize("urls", [None, []])
def test_docker_foreign_layer_needs_urls(urls: Any) -> None:
    layer = desc(media.DOCKER_FOREIGN_LAYER_GZIP, C, urls=urls)
    assert field_of(invalid(docker_manifest(layers=[layer]))) == "layers[0].urls"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/layer",
        "file:///etc/passwd",
        "/relative/path",
        "example.com/layer",
        "https://example.com/layer#fragment",
        "https://exa mple.com/layer",
        "https://example.com/la\nyer",
        "https://example.com/\x7f",
        "http://[::1/layer",
        "https://",
        "",
    ],
)
def test_layer_urls_must_be_http_or_https(url: str) -> None:
    layer = desc(media.OCI_LAYER_NONDISTRIBUTABLE_GZIP, C, urls=["https://ok.example/x", url])
    assert field_of(invalid(oci_manifest(layers=[layer]))) == "layers[0].urls[1]"


@pytest.mark.parametrize(
    "url", ["http://example.com/x", "HTTPS://example.com/x?a=b", "https://[::1]:5000/x#"]
)
def test_layer_urls_accepted(url: str) -> None:
    layer = desc(media.OCI_LAYER_NONDISTRIBUTABLE, C, urls=[url])
    assert parse(oci_manifest(layers=[layer])).external[0].urls == (url,)


# --- Docker schema 2 ------------------------------------------------------------------------


def test_docker_manifest() -> None:
    parsed = parse(docker_manifest())
    assert parsed.media_type == media.DOCKER_MANIFEST
    assert [d.media_type for d in parsed.blobs] == [media.DOCKER_CONFIG, media.DOCKER_LAYER_GZIP]
    assert parsed.artifact_type == media.DOCKER_CONFIG
    assert parsed.subject is None
    assert parsed.annotations is None


def test_docker_manifest_layer_media_types_are_not_restricted() -> None:
    # Distribution's schema 2 handler checks none; Docker-format images carry OCI zstd layers.
    layers = [
        desc(media.DOCKER_LAYER),
        desc(media.OCI_LAYER_ZSTD),
        desc("application/vnd.example.whatever"),
    ]
    assert len(parse(docker_manifest(layers=layers)).blobs) == 4


def test_docker_formats_ignore_oci_only_fields() -> None:
    extras = {
        "subject": "not a descriptor",
        "artifactType": 7,
        "annotations": {"k": 1},
    }
    parsed = parse(docker_manifest(**extras))
    assert (parsed.subject, parsed.annotations) == (None, None)
    assert parsed.artifact_type == media.DOCKER_CONFIG
    parsed_list = parse(docker_list(**extras))
    assert (parsed_list.subject, parsed_list.artifact_type, parsed_list.annotations) == (
        None,
        None,
        None,
    )


def test_docker_manifest_list() -> None:
    parsed = parse(docker_list())
    assert parsed.blobs == ()
    assert parsed.config is None
    assert [d.digest for d in parsed.manifests] == [Digest.parse(A)]
    assert parsed.manifests[0].platform == {"architecture": "amd64", "os": "linux"}
    assert parsed.references() == parsed.manifests


def test_docker_manifest_list_platform_is_optional() -> None:
    parsed = parse(docker_list(manifests=[desc(media.DOCKER_MANIFEST)]))
    assert parsed.manifests[0].platform is None


# --- OCI index ------------------------------------------------------------------------------


def test_oci_index() -> None:
    parsed = parse(oci_index(annotations={"org.opencontainers.image.created": "2024"}))
    assert parsed.media_type == media.OCI_INDEX
    assert parsed.blobs == ()
    assert [d.digest for d in parsed.manifests] == [Digest.parse(A), Digest.parse(B)]
    assert parsed.manifests[1].platform == {"architecture": "arm64", "os": "linux"}
    assert parsed.artifact_type is None
    assert parsed.annotations == {"org.opencontainers.image.created": "2024"}
    assert parsed.config is None


def test_index_children_may_have_any_media_type() -> None:
    # image-spec: an unknown mediaType in an index MUST be ignored, not refused.
    children = [
        desc(media.OCI_INDEX),
        desc(media.DOCKER_MANIFEST),
        desc("application/vnd.example.future+json"),
        desc(media.OCI_LAYER_GZIP),
    ]
    assert len(parse(oci_index(manifests=children)).manifests) == 4


def test_empty_index() -> None:
    assert parse(oci_index(manifests=[])).references() == ()


@pytest.mark.parametrize("value", [None, "missing", {}, "x", desc(media.OCI_MANIFEST)])
def test_index_manifests_is_a_required_array(value: Any) -> None:
    doc = oci_index(manifests=value)
    if value == "missing":
        del doc["manifests"]
    assert field_of(invalid(doc)) == "manifests"


def test_index_children_are_validated() -> None:
    children = [desc(media.OCI_MANIFEST), desc(media.OCI_MANIFEST, size=-1)]
    assert field_of(invalid(oci_index(manifests=children))) == "manifests[1].size"
    with pytest.raises(DigestInvalid):
        parse(oci_index(manifests=[desc(media.OCI_MANIFEST, "sha256:nope")]))


@pytest.mark.parametrize(
    ("platform", "bad_field"),
    [
        ({"os": "linux"}, "architecture"),
        ({"architecture": "amd64"}, "os"),
        ({"architecture": 1, "os": "linux"}, "architecture"),
        ({"architecture": "amd64", "os": None}, "os"),
        ({"architecture": "arm", "os": "linux", "variant": 7}, "variant"),
        ({"architecture": "amd64", "os": "windows", "os.version": 10}, "os.version"),
        ({"architecture": "amd64", "os": "windows", "os.features": "win32k"}, "os.features"),
        ({"architecture": "amd64", "os": "linux", "features": [1]}, "features"),
        ([], None),
        ("linux/amd64", None),
    ],
)
def test_platform_is_checked(platform: Any, bad_field: str | None) -> None:
    error = invalid(oci_index(manifests=[desc(media.OCI_MANIFEST, platform=platform)]))
    expected = "manifests[0].platform" + (f".{bad_field}" if bad_field else "")
    assert field_of(error) == expected


def test_platform_kept_as_given() -> None:
    platform = {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.17763.1",
        "os.features": ["win32k"],
        "variant": "v3",
        "features": [],
        "future": {"x": 1},
    }
    parsed = parse(oci_index(manifests=[desc(media.OCI_MANIFEST, platform=platform)]))
    assert parsed.manifests[0].platform == platform


# --- subject, artifactType, annotations -----------------------------------------------------


@pytest.mark.parametrize("make", [oci_manifest, oci_index])
def test_subject(make: Any) -> None:
    subject = desc(media.OCI_MANIFEST, C, 1234)
    parsed = parse(make(subject=subject))
    assert parsed.subject == Descriptor(media.OCI_MANIFEST, Digest.parse(C), 1234)
    # The subject is not a reference: it need not exist (the distribution-spec allows it).
    assert parsed.subject not in parsed.references()


@pytest.mark.parametrize("make", [oci_manifest, oci_index])
def test_subject_is_validated(make: Any) -> None:
    assert field_of(invalid(make(subject="sha256:x"))) == "subject"
    assert field_of(invalid(make(subject=desc(media.OCI_MANIFEST, size=-1)))) == "subject.size"
    with pytest.raises(DigestInvalid) as info:
        parse(make(subject=desc(media.OCI_MANIFEST, "sha256:bad")))
    assert info.value.detail["field"] == "subject.digest"
    assert parse(make(subject=None)).subject is None


def test_artifact_type() -> None:
    sbom = "application/vnd.example.sbom.v1"
    assert parse(oci_manifest(artifactType=sbom)).artifact_type == sbom
    assert parse(oci_manifest(artifactType="")).artifact_type == media.OCI_CONFIG
    assert parse(oci_manifest(artifactType=None)).artifact_type == media.OCI_CONFIG
    assert parse(oci_index(artifactType=sbom)).artifact_type == sbom
    assert parse(oci_index(artifactType="")).artifact_type is None


@pytest.mark.parametrize("value", [1, True, ["a/b"], "noslash", "a/b; x=y"])
@pytest.mark.parametrize("make", [oci_manifest, oci_index])
def test_artifact_type_is_checked(make: Any, value: Any) -> None:
    assert field_of(invalid(make(artifactType=value))) == "artifactType"


@pytest.mark.parametrize("make", [oci_manifest, oci_index])
def test_annotations_kept_as_given(make: Any) -> None:
    annotations = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "empty": ""}
    parsed = parse(make(annotations=annotations))
    assert parsed.annotations == annotations
    assert parse(make(annotations={})).annotations == {}
    assert parse(make()).annotations is None
    with pytest.raises(TypeError):
        parsed.annotations["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize("value", [[], "a=b", {"a": 1}, {"a": ["b"]}, {"a": None}])
@pytest.mark.parametrize("make", [oci_manifest, oci_index])
def test_annotations_must_map_strings_to_strings(make: Any, value: Any) -> None:
    assert field_of(invalid(make(annotations=value))) == "annotations"


# --- value types ----------------------------------------------------------------------------


def test_descriptor_to_json() -> None:
    minimal = Descriptor(media.OCI_LAYER, Digest.parse(A), 3)
    assert minimal.to_json() == {"mediaType": media.OCI_LAYER, "digest": A, "size": 3}
    full_json = desc(
        media.OCI_MANIFEST,
        B,
        7,
        artifactType="application/vnd.example",
        urls=["https://example.com/x"],
        annotations={"a": "b"},
        platform={"architecture": "amd64", "os": "linux", "os.features": ["x"]},
    )
    full = Descriptor.from_json(full_json)
    assert full.to_json() == full_json
    assert list(full.to_json()) == [
        "mediaType",
        "digest",
        "size",
        "artifactType",
        "urls",
        "annotations",
        "platform",
    ]
    json.dumps(full.to_json())
    # The JSON is a copy: changing it leaves the descriptor alone.
    out = full.to_json()
    out["platform"]["os.features"].append("y")
    out["annotations"]["c"] = "d"
    assert full.to_json() == full_json


def test_descriptor_from_json_default_path() -> None:
    with pytest.raises(ManifestInvalid) as info:
        Descriptor.from_json({"mediaType": "a/b", "digest": A})
    assert field_of(info.value) == "descriptor.size"
    with pytest.raises(ManifestInvalid):
        Descriptor.from_json(None)


def test_value_types_are_hashable_and_frozen() -> None:
    parsed = parse(oci_index(annotations={"a": "b"}, subject=desc(media.OCI_MANIFEST, C)))
    assert hash(parsed) == hash(
        parse(oci_index(annotations={"a": "b"}, subject=desc(media.OCI_MANIFEST, C)))
    )
    assert len({*parsed.manifests}) == 2
    with pytest.raises(AttributeError):
        parsed.size = 1  # type: ignore[misc]


def test_parsed_manifest_descriptor_for_referrers() -> None:
    doc = oci_manifest(
        config=desc(media.OCI_EMPTY, A, 2),
        layers=[desc("application/vnd.example.signature", B)],
        artifactType="application/vnd.example.signature",
        subject=desc(media.OCI_MANIFEST, C, 99),
        annotations={"org.opencontainers.image.created": "2024"},
    )
    body = encode(doc)
    parsed = parse_manifest(body, media.OCI_MANIFEST)
    assert parsed.descriptor().to_json() == {
        "mediaType": media.OCI_MANIFEST,
        "digest": str(digest_of(body)),
        "size": len(body),
        "artifactType": "application/vnd.example.signature",
        "annotations": {"org.opencontainers.image.created": "2024"},
    }
    index = parse(oci_index(subject=desc(media.OCI_MANIFEST, C)))
    assert "artifactType" not in index.descriptor().to_json()


def test_media_base_type() -> None:
    assert media.base_media_type(None) is None
    assert media.base_media_type("") is None
    assert media.base_media_type(" ;a=b") is None
    assert media.base_media_type("Application/JSON; charset=utf-8") == "application/json"
    accepted = {
        media.OCI_MANIFEST,
        media.OCI_INDEX,
        media.DOCKER_MANIFEST,
        media.DOCKER_MANIFEST_LIST,
    }
    assert accepted == media.MANIFEST_TYPES
    assert not media.MANIFEST_TYPES & (media.SCHEMA1_TYPES | media.REFUSED_ARTIFACT_MANIFEST_TYPES)


# --- fuzzing --------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

CONTENT_TYPES = st.sampled_from(
    [
        None,
        "",
        media.OCI_MANIFEST,
        media.OCI_INDEX,
        media.DOCKER_MANIFEST,
        media.DOCKER_MANIFEST_LIST,
        media.DOCKER_SCHEMA1_SIGNED,
        media.OCI_ARTIFACT_MANIFEST,
        "application/json; charset=utf-8",
        "garbage;;;",
    ]
)
KEYS = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "subject",
        "artifactType",
        "annotations",
        "digest",
        "size",
        "urls",
        "platform",
        "architecture",
        "os",
    ]
) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([2, 1, 0, A, B, D, "sha256:x", media.OCI_MANIFEST, media.OCI_LAYER, "x/y"])
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


def _check_outcome(body: bytes, content_type: str | None) -> None:
    try:
        parsed = parse_manifest(body, content_type)
    except RegistryError as exc:
        # Whatever is refused must render as an error body, UTF-8 encodable.
        json.dumps(exc.as_dict(), ensure_ascii=False).encode()
        return
    assert parsed.digest == digest_of(body)
    assert parsed.media_type in media.MANIFEST_TYPES
    for descriptor in (*parsed.references(), *parsed.external):
        json.dumps(descriptor.to_json(), ensure_ascii=False).encode()
    json.dumps(parsed.descriptor().to_json(), ensure_ascii=False).encode()


@FUZZ
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES)
def test_fuzz_random_bytes(body: bytes, content_type: str | None) -> None:
    _check_outcome(body, content_type)


@FUZZ
@given(doc=JSON_VALUES, content_type=CONTENT_TYPES)
def test_fuzz_random_json(doc: Any, content_type: str | None) -> None:
    _check_outcome(json.dumps(doc).encode(), content_type)


PATHS = [
    (),
    ("schemaVersion",),
    ("mediaType",),
    ("config",),
    ("config", "digest"),
    ("config", "size"),
    ("config", "mediaType"),
    ("config", "urls"),
    ("config", "annotations"),
    ("layers",),
    ("layers", 0),
    ("layers", 0, "digest"),
    ("layers", 0, "size"),
    ("layers", 0, "mediaType"),
    ("layers", 0, "urls"),
    ("layers", 0, "platform"),
    ("manifests",),
    ("manifests", 0),
    ("manifests", 0, "platform"),
    ("manifests", 0, "platform", "os"),
    ("manifests", 0, "platform", "os.features"),
    ("subject",),
    ("subject", "digest"),
    ("artifactType",),
    ("annotations",),
    ("annotations", "k"),
]
BASES = [
    oci_manifest(
        subject=desc(media.OCI_MANIFEST, C),
        annotations={"k": "v"},
        layers=[desc(media.OCI_LAYER_NONDISTRIBUTABLE, C, urls=["https://x.example/c"])],
    ),
    oci_index(subject=desc(media.OCI_MANIFEST, C), annotations={"k": "v"}),
    docker_manifest(),
    docker_list(),
]


def _has(node: Any, step: Any) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and step < len(node)


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """``doc`` with the value at ``path`` replaced, where that path exists."""
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for step in path[:-1]:
        if not _has(node, step):
            return doc
        node = node[step]
    if isinstance(node, dict) or _has(node, path[-1]):
        node[path[-1]] = value
    return doc


@FUZZ
@given(
    base=st.sampled_from(BASES),
    edits=st.lists(st.tuples(st.sampled_from(PATHS), JSON_VALUES), min_size=1, max_size=3),
    content_type=CONTENT_TYPES,
)
def test_fuzz_mutated_manifests(
    base: dict[str, Any], edits: list[tuple[tuple[Any, ...], Any]], content_type: str | None
) -> None:
    doc: Any = base
    for path, value in edits:
        doc = _replace(doc, path, value)
    _check_outcome(json.dumps(doc).encode(), content_type)


DIGESTS = st.builds(lambda h: "sha256:" + h, st.text("0123456789abcdef", min_size=64, max_size=64))


@FUZZ
@given(
    layers=st.lists(
        st.tuples(
            st.sampled_from([media.OCI_LAYER_GZIP, media.OCI_LAYER_ZSTD]),
            DIGESTS,
            st.integers(0, 2**63 - 1),
        ),
        max_size=20,
    ),
    indent=st.none() | st.integers(0, 4),
)
def test_fuzz_valid_manifests_parse(layers: list[tuple[str, str, int]], indent: int | None) -> None:
    doc = oci_manifest(layers=[desc(t, d, s) for t, d, s in layers])
    body = json.dumps(doc, indent=indent).encode()
    parsed = parse_manifest(body, media.OCI_MANIFEST)
    assert parsed.digest == digest_of(body)
    assert [(d.media_type, str(d.digest), d.size) for d in parsed.blobs[1:]] == layers
