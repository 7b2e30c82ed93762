"""skopeo against a running registry: copies keep every digest, inspect, list-tags, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import httpx
import pytest

from tests.support.clients import ClientError, Registry, Skopeo, binary
from tests.support.images import (
    DOCKER,
    OCI,
    BuiltImage,
    BuiltIndex,
    MediaTypes,
    build_image,
    build_index,
    read_layout_index,
    sha256_digest,
)

pytestmark = [
    pytest.mark.client,
    pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed"),
]

MANIFEST_ACCEPT = ", ".join(
    [OCI.manifest, OCI.index, DOCKER.manifest, DOCKER.index, "application/json;q=0.1"]
)
FORMATS = [pytest.param(OCI, id="oci"), pytest.param(DOCKER, id="docker")]


@pytest.fixture
def skopeo(tmp_path: Path, registry: Registry) -> Skopeo:
    return Skopeo(tmp_path / "skopeo", server=registry)


def _layout_kind(media_types: MediaTypes) -> Literal["oci", "dir"]:
    # skopeo 1.9 reads only OCI media types from an OCI layout and writes only OCI media types
    # to one without converting, so Docker images travel through its dir: layout.
    return "oci" if media_types is OCI else "dir"


def _destination(path: Path, media_types: MediaTypes, tag: str) -> str:
    return f"oci:{path}:{tag}" if media_types is OCI else f"dir:{path}"


def _blob(path: Path, media_types: MediaTypes, digest: str) -> bytes:
    """A blob's bytes from a layout that skopeo wrote."""
    hex_digest = digest.removeprefix("sha256:")
    if media_types is OCI:
        return (path / "blobs" / "sha256" / hex_digest).read_bytes()
    return (path / hex_digest).read_bytes()


def _top_manifest(path: Path, media_types: MediaTypes, tag: str) -> bytes:
    """The top-level manifest (or index) bytes of a layout that skopeo wrote."""
    if media_types is DOCKER:
        return (path / "manifest.json").read_bytes()
    entries = [
        entry
        for entry in read_layout_index(path)["manifests"]
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    assert len(entries) == 1, entries
    return _blob(path, media_types, entries[0]["digest"])


def _child_manifest(path: Path, media_types: MediaTypes, digest: str) -> bytes:
    if media_types is DOCKER:
        return (path / f"{digest.removeprefix('sha256:')}.manifest.json").read_bytes()
    return _blob(path, media_types, digest)


def _get_manifest(registry: Registry, repository: str, reference: str) -> httpx.Response:
    return httpx.get(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": MANIFEST_ACCEPT},
    )


def _assert_image_pulled(path: Path, media_types: MediaTypes, image: BuiltImage, tag: str) -> None:
    manifest = _top_manifest(path, media_types, tag)
    assert sha256_digest(manifest) == image.digest
    document = json.loads(manifest)
    assert document["mediaType"] == media_types.manifest
    assert document["config"]["digest"] == image.config.digest
    assert [layer["digest"] for layer in document["layers"]] == [
        layer.digest for layer in image.layers
    ]
    for digest in image.blob_digests:
        assert sha256_digest(_blob(path, media_types, digest)) == digest


@pytest.mark.parametrize("media_types", FORMATS)
def test_copy_image_round_trip_keeps_digests(
    skopeo: Skopeo, registry: Registry, tmp_path: Path, media_types: MediaTypes
) -> None:
    image = build_image(
        tmp_path / "source",
        tag="v1",
        layers=4,
        layer_size=300_000,
        media_types=media_types,
        layout=_layout_kind(media_types),
    )
    remote = f"docker://{registry.host}/skopeo/{media_types.name}:v1"

    skopeo.copy(image.source, remote)

    raw = skopeo.inspect_raw(remote)
    assert sha256_digest(raw) == image.digest
    response = _get_manifest(registry, f"skopeo/{media_types.name}", "v1")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_types.manifest
    assert response.headers["docker-content-digest"] == image.digest
    assert response.content == raw
    by_digest = _get_manifest(registry, f"skopeo/{media_types.name}", image.digest)
    assert by_digest.status_code == 200
    assert by_digest.content == raw

    back = tmp_path / "back"
    skopeo.copy(remote, _destination(back, media_types, "v1"))
    _assert_image_pulled(back, media_types, image, "v1")

    # A second push of the same image finds every blob present and changes nothing.
    skopeo.copy(image.source, remote)
    assert sha256_digest(skopeo.inspect_raw(remote)) == image.digest


@pytest.mark.slow
def test_copy_large_layers(skopeo: Skopeo, registry: Registry, tmp_path: Path) -> None:
    image = build_image(tmp_path / "source", tag="big", layers=2, layer_size=24 * 1024 * 1024)
    remote = f"docker://{registry.host}/skopeo/large:big"

    skopeo.copy(image.source, remote)
    back = tmp_path / "back"
    skopeo.copy(remote, f"oci:{back}:big")

    _assert_image_pulled(back, OCI, image, "big")
    for layer in image.layers:
        response = httpx.head(
            f"{registry.url}/v2/skopeo/large/blobs/{layer.digest}", follow_redirects=True
        )
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == layer.size


@pytest.mark.parametrize("media_types", FORMATS)
def test_copy_all_of_an_index_round_trip_keeps_digests(
    skopeo: Skopeo, registry: Registry, tmp_path: Path, media_types: MediaTypes
) -> None:
    index = build_index(
        tmp_path / "source", tag="multi", media_types=media_types, layout=_layout_kind(media_types)
    )
    repository = f"skopeo/{media_types.name}-index"
    remote = f"docker://{registry.host}/{repository}:multi"

    skopeo.copy(index.source, remote, all_images=True)

    raw = skopeo.inspect_raw(remote)
    assert sha256_digest(raw) == index.digest
    response = _get_manifest(registry, repository, "multi")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_types.index
    assert response.headers["docker-content-digest"] == index.digest
    for image in index.images:
        child = skopeo.inspect_raw(f"docker://{registry.host}/{repository}@{image.digest}")
        assert sha256_digest(child) == image.digest

    back = tmp_path / "back"
    skopeo.copy(remote, _destination(back, media_types, "multi"), all_images=True)
    _assert_index_pulled(back, media_types, index, "multi")


def _assert_index_pulled(path: Path, media_types: MediaTypes, index: BuiltIndex, tag: str) -> None:
    top = _top_manifest(path, media_types, tag)
    assert sha256_digest(top) == index.digest
    assert json.loads(top)["mediaType"] == media_types.index
    for image in index.images:
        assert sha256_digest(_child_manifest(path, media_types, image.digest)) == image.digest
        for digest in image.blob_digests:
            assert sha256_digest(_blob(path, media_types, digest)) == digest


def test_inspect_describes_the_image_and_picks_a_platform(
    skopeo: Skopeo, registry: Registry, tmp_path: Path
) -> None:
    image = build_image(tmp_path / "image", tag="v1", layers=3)
    index = build_index(tmp_path / "index", tag="multi")
    skopeo.copy(image.source, f"docker://{registry.host}/skopeo/inspect:v1")
    skopeo.copy(index.source, f"docker://{registry.host}/skopeo/inspect:multi", all_images=True)

    info = skopeo.inspect(f"docker://{registry.host}/skopeo/inspect:v1")
    assert info["Digest"] == image.digest
    assert info["Layers"] == [layer.digest for layer in image.layers]
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert sorted(info["RepoTags"]) == ["multi", "v1"]

    config = skopeo.inspect(f"docker://{registry.host}/skopeo/inspect:v1", "--config")
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]

    for platform_image in index.images:
        chosen = skopeo.inspect(
            f"docker://{registry.host}/skopeo/inspect:multi",
            "--override-arch",
            platform_image.platform.architecture,
            "--override-os",
            platform_image.platform.os,
        )
        # Digest names what the tag points to (the index); the rest describes the chosen image.
        assert chosen["Digest"] == index.digest
        assert chosen["Architecture"] == platform_image.platform.architecture
        assert chosen["Layers"] == [layer.digest for layer in platform_image.layers]


def test_list_tags_and_copy_between_repositories(
    skopeo: Skopeo, registry: Registry, tmp_path: Path
) -> None:
    image = build_image(tmp_path / "image", tag="v1", layers=3)
    tags = ["v1", "v2", "latest", "1.0.0", "release_candidate"]
    for tag in tags:
        skopeo.copy(image.source, f"docker://{registry.host}/skopeo/tags:{tag}")

    assert sorted(skopeo.list_tags(f"docker://{registry.host}/skopeo/tags")) == sorted(tags)

    # Registry to registry: skopeo mounts the blobs from the other repository.
    skopeo.copy(
        f"docker://{registry.host}/skopeo/tags:v1",
        f"docker://{registry.host}/skopeo/other/copy:v1",
    )
    raw = skopeo.inspect_raw(f"docker://{registry.host}/skopeo/other/copy:v1")
    assert sha256_digest(raw) == image.digest
    assert skopeo.list_tags(f"docker://{registry.host}/skopeo/other/copy") == ["v1"]
    for digest in image.blob_digests:
        response = httpx.head(
            f"{registry.url}/v2/skopeo/other/copy/blobs/{digest}", follow_redirects=True
        )
        assert response.status_code == 200, digest

    with pytest.raises(ClientError):
        skopeo.list_tags(f"docker://{registry.host}/skopeo/missing")


def test_delete_removes_the_manifest(skopeo: Skopeo, registry: Registry, tmp_path: Path) -> None:
    image = build_image(tmp_path / "image", tag="v1", layers=2)
    other = build_image(tmp_path / "other", tag="keep", layers=2, seed=7)
    remote = f"docker://{registry.host}/skopeo/delete"
    skopeo.copy(image.source, f"{remote}:v1")
    skopeo.copy(other.source, f"{remote}:keep")
    assert _get_manifest(registry, "skopeo/delete", image.digest).status_code == 200

    skopeo.delete(f"{remote}:v1")

    result = skopeo.run("inspect", "--raw", "--tls-verify=false", f"{remote}:v1", check=False)
    assert result.returncode != 0
    assert "manifest unknown" in result.stderr.lower(), result.stderr
    by_digest = _get_manifest(registry, "skopeo/delete", image.digest)
    assert by_digest.status_code == 404
    assert by_digest.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    by_tag = _get_manifest(registry, "skopeo/delete", "v1")
    assert by_tag.status_code == 404
    assert by_tag.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert skopeo.list_tags(remote) == ["keep"]
    assert sha256_digest(skopeo.inspect_raw(f"{remote}:keep")) == other.digest

    # Deleting by digest works too.
    skopeo.delete(f"{remote}@{other.digest}")
    assert _get_manifest(registry, "skopeo/delete", other.digest).status_code == 404
