"""podman and buildah push and pull round trips (no container is ever run)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.clients import Buildah, Podman, Registry, Skopeo, binary
from tests.support.images import DOCKER, OCI, MediaTypes, build_image, build_index

pytestmark = pytest.mark.client

needs_podman = pytest.mark.skipif(binary("podman") is None, reason="podman is not installed")
needs_buildah = pytest.mark.skipif(binary("buildah") is None, reason="buildah is not installed")
needs_skopeo = pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed")

MANIFEST_ACCEPT = ", ".join([OCI.manifest, OCI.index, DOCKER.manifest, DOCKER.index])


@pytest.fixture
def podman_factory(tmp_path: Path) -> Iterator[Callable[[Registry], Podman]]:
    with contextlib.ExitStack() as stack:
        yield lambda registry: stack.enter_context(Podman(tmp_path / "podman", server=registry))


@pytest.fixture
def buildah_factory(tmp_path: Path) -> Iterator[Callable[[Registry], Buildah]]:
    with contextlib.ExitStack() as stack:
        yield lambda registry: stack.enter_context(Buildah(tmp_path / "buildah", server=registry))


def _manifest(registry: Registry, repository: str, reference: str) -> httpx.Response:
    response = httpx.get(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": MANIFEST_ACCEPT},
    )
    assert response.status_code == 200, response.text
    return response


@needs_podman
@pytest.mark.parametrize(
    ("push_format", "media_types"),
    [pytest.param("oci", OCI, id="oci"), pytest.param("v2s2", DOCKER, id="v2s2")],
)
def test_podman_push_rmi_pull_round_trip(
    registry: Registry,
    podman_factory: Callable[[Registry], Podman],
    tmp_path: Path,
    push_format: str,
    media_types: MediaTypes,
) -> None:
    podman = podman_factory(registry)
    image = build_image(tmp_path / "layout", tag="v1", layers=3, layer_size=200_000)
    target = f"{registry.host}/podman/round-trip:v1"

    podman.run("pull", "--signature-policy", str(podman.policy), image.source)
    podman.run("tag", image.config.digest.removeprefix("sha256:"), target)
    digest_file = tmp_path / "pushed-digest"
    podman.run(
        "push",
        "--signature-policy",
        str(podman.policy),
        "--tls-verify=false",
        "--format",
        push_format,
        "--digestfile",
        str(digest_file),
        target,
    )
    pushed = digest_file.read_text().strip()

    # podman stores layers uncompressed and compresses them again on push, so the layer and
    # manifest digests are new; the config (the image ID) and the diff IDs are not.
    response = _manifest(registry, "podman/round-trip", "v1")
    assert response.headers["docker-content-digest"] == pushed
    assert response.headers["content-type"] == media_types.manifest
    manifest = response.json()
    assert manifest["mediaType"] == media_types.manifest
    assert manifest["config"]["digest"] == image.config.digest
    assert len(manifest["layers"]) == 3

    podman.run("rmi", "--all", "--force")
    assert podman.run("images", "--quiet").stdout.strip() == ""

    podman.run("pull", "--signature-policy", str(podman.policy), "--tls-verify=false", target)
    info = podman.image_inspect(target)
    assert info["Id"] == image.config.digest.removeprefix("sha256:")
    assert info["Digest"] == pushed
    assert f"{registry.host}/podman/round-trip@{pushed}" in info["RepoDigests"]
    assert info["RootFS"]["Layers"] == [layer.diff_id for layer in image.layers]
    assert info["Architecture"] == "amd64"

    by_digest = f"{registry.host}/podman/round-trip@{pushed}"
    podman.run("rmi", "--all", "--force")
    podman.run("pull", "--signature-policy", str(podman.policy), "--tls-verify=false", by_digest)
    assert podman.image_inspect(by_digest)["Id"] == image.config.digest.removeprefix("sha256:")


@needs_podman
@needs_skopeo
def test_podman_pulls_the_platform_it_asks_for(
    registry: Registry, podman_factory: Callable[[Registry], Podman], tmp_path: Path
) -> None:
    index = build_index(tmp_path / "layout", tag="multi")
    remote = f"{registry.host}/podman/multi:multi"
    Skopeo(tmp_path / "skopeo", server=registry).copy(
        index.source, f"docker://{remote}", all_images=True
    )
    podman = podman_factory(registry)

    for image in index.images:
        podman.run(
            "pull",
            "--signature-policy",
            str(podman.policy),
            "--tls-verify=false",
            "--os",
            image.platform.os,
            "--arch",
            image.platform.architecture,
            remote,
        )
        info = podman.image_inspect(remote)
        assert info["Id"] == image.config.digest.removeprefix("sha256:")
        assert info["Architecture"] == image.platform.architecture
        assert info["RootFS"]["Layers"] == [layer.diff_id for layer in image.layers]
        podman.run("rmi", "--all", "--force")


@needs_buildah
def test_buildah_scratch_commit_push_pull(
    registry: Registry, buildah_factory: Callable[[Registry], Buildah], tmp_path: Path
) -> None:
    buildah = buildah_factory(registry)
    content = b"hello from wharf\n" * 1000
    (tmp_path / "hello.txt").write_bytes(content)
    target = f"{registry.host}/buildah/scratch:v1"
    policy = ["--signature-policy", str(buildah.policy)]

    container = buildah.run("from", *policy, "scratch").stdout.strip()
    buildah.run("copy", container, str(tmp_path / "hello.txt"), "/hello.txt")
    buildah.run("config", "--label", "wharf.test=buildah", container)
    image_id = buildah.run("commit", *policy, "--quiet", container, target).stdout.strip()
    digest_file = tmp_path / "pushed-digest"
    buildah.run("push", *policy, "--tls-verify=false", "--digestfile", str(digest_file), target)
    pushed = digest_file.read_text().strip()

    manifest = _manifest(registry, "buildah/scratch", "v1")
    assert manifest.headers["docker-content-digest"] == pushed
    (layer,) = manifest.json()["layers"]
    blob = httpx.get(
        f"{registry.url}/v2/buildah/scratch/blobs/{layer['digest']}", follow_redirects=True
    )
    assert blob.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.content))) as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None
        assert member.read() == content

    buildah.run("rm", "--all")
    buildah.run("rmi", "--all", "--force")
    buildah.run("pull", *policy, "--tls-verify=false", target)
    info = buildah.image_inspect(target)
    assert info["FromImageID"] == image_id
    assert info["FromImageDigest"] == pushed
    config = json.loads(info["Config"])
    assert config["config"]["Labels"]["wharf.test"] == "buildah"
