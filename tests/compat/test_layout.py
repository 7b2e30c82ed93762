"""Storage layout compatibility with Distribution 2.8 (Debian's docker-registry), both ways.

wharf must serve a tree that docker-registry wrote, docker-registry must serve a tree that wharf
wrote, and the files wharf writes for a push must be the very files Distribution writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.clients import Registry, Skopeo, binary
from tests.support.images import (
    DOCKER,
    BuiltImage,
    BuiltIndex,
    build_image,
    build_index,
    sha256_digest,
)
from tests.support.reference_registry import ReferenceRegistry, docker_registry_binary
from tests.support.server import WharfServer

pytestmark = [
    pytest.mark.reference,
    pytest.mark.skipif(
        docker_registry_binary() is None,
        reason="docker-registry (Distribution 2.8) is not installed",
    ),
    pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed"),
]

V2 = Path("docker/registry/v2")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


@dataclass(frozen=True)
class Pushed:
    """An image or index pushed to ``repository:tag``."""

    repository: str
    tag: str
    built: BuiltImage | BuiltIndex

    @property
    def digest(self) -> str:
        return self.built.digest


@pytest.fixture
def content(tmp_path: Path) -> list[Pushed]:
    """What each test pushes: OCI and Docker images, an index and a manifest list."""
    source = tmp_path / "source"
    oci_image = build_image(source / "oci", tag="v1", layers=4, layer_size=150_000)
    docker_image = build_image(
        source / "docker", tag="v1", layers=3, seed=3, media_types=DOCKER, layout="dir"
    )
    oci_index = build_index(source / "oci-index", tag="multi")
    docker_list = build_index(
        source / "docker-list", tag="multi", seed=200, media_types=DOCKER, layout="dir"
    )
    return [
        Pushed("compat/oci", "v1", oci_image),
        Pushed("compat/oci", "also-v1", oci_image),
        Pushed("compat/docker", "v1", docker_image),
        Pushed("compat/nested/index", "multi", oci_index),
        Pushed("compat/docker-list", "multi", docker_list),
    ]


@pytest.fixture
def skopeo(tmp_path: Path) -> Iterator[Skopeo]:
    with Skopeo(tmp_path / "skopeo") as client:
        yield client


def _push(skopeo: Skopeo, server: Registry, content: list[Pushed]) -> None:
    skopeo.server = server
    for item in content:
        skopeo.copy(
            item.built.source,
            f"docker://{server.host}/{item.repository}:{item.tag}",
            all_images=isinstance(item.built, BuiltIndex),
        )


def _pull_and_compare(
    skopeo: Skopeo, server: Registry, content: list[Pushed], directory: Path
) -> None:
    """Copy everything back into ``dir:`` layouts and check every digest and byte."""
    skopeo.server = server
    directory.mkdir()
    for number, item in enumerate(content):
        target = directory / f"{number}"
        remote = f"docker://{server.host}/{item.repository}:{item.tag}"
        assert sha256_digest(skopeo.inspect_raw(remote)) == item.digest, remote
        is_index = isinstance(item.built, BuiltIndex)
        skopeo.copy(remote, f"dir:{target}", all_images=is_index)
        assert sha256_digest((target / "manifest.json").read_bytes()) == item.digest
        images = item.built.images if isinstance(item.built, BuiltIndex) else (item.built,)
        for image in images:
            if is_index:
                child = target / f"{image.digest.removeprefix('sha256:')}.manifest.json"
                assert sha256_digest(child.read_bytes()) == image.digest
            for digest in image.blob_digests:
                data = (target / digest.removeprefix("sha256:")).read_bytes()
                assert sha256_digest(data) == digest


def _check_listings(skopeo: Skopeo, server: Registry, content: list[Pushed]) -> None:
    expected: dict[str, list[str]] = {}
    for item in content:
        expected.setdefault(item.repository, []).append(item.tag)
    for repository, tags in expected.items():
        assert sorted(skopeo.list_tags(f"docker://{server.host}/{repository}")) == sorted(tags)
        listing = httpx.get(f"{server.url}/v2/{repository}/tags/list")
        assert listing.status_code == 200, listing.text
        document = listing.json()
        assert document["name"] == repository
        # Distribution 2.8 lists tags in directory order; the OCI spec asks for lexical order.
        assert sorted(document["tags"]) == sorted(tags)
    catalog = httpx.get(f"{server.url}/v2/_catalog")
    assert catalog.status_code == 200, catalog.text
    assert catalog.json() == {"repositories": sorted(expected)}


def _wharf_on(root: Path) -> WharfServer:
    return WharfServer(storage={"filesystem": {"rootdirectory": str(root)}})


def _reference_on(root: Path) -> ReferenceRegistry:
    return ReferenceRegistry(root=root)


def _round_trip(
    writer: AbstractContextManager[Registry],
    reader: AbstractContextManager[Registry],
    skopeo: Skopeo,
    content: list[Pushed],
    tmp_path: Path,
) -> None:
    with writer as server:
        _push(skopeo, server, content)
        _pull_and_compare(skopeo, server, content, tmp_path / "from-writer")
    with reader as server:
        _pull_and_compare(skopeo, server, content, tmp_path / "from-reader")
        _check_listings(skopeo, server, content)


def test_wharf_serves_what_distribution_wrote(
    skopeo: Skopeo, content: list[Pushed], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    _round_trip(_reference_on(root), _wharf_on(root), skopeo, content, tmp_path)


def test_distribution_serves_what_wharf_wrote(
    skopeo: Skopeo, content: list[Pushed], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    _round_trip(_wharf_on(root), _reference_on(root), skopeo, content, tmp_path)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes (blob data by digest)."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            relative = str(path.relative_to(root))
            files[relative] = sha256_digest(data).encode() if path.name == "data" else data
    return files


def _expected_files(item: Pushed) -> set[str]:
    """The files Distribution keeps for one pushed image or index, relative to the root."""
    repository = V2 / "repositories" / item.repository
    manifests = [item.built.digest]
    blobs: list[str] = []
    images = item.built.images if isinstance(item.built, BuiltIndex) else (item.built,)
    for image in images:
        if isinstance(item.built, BuiltIndex):
            manifests.append(image.digest)
        blobs += image.blob_digests
    files = {
        f"{repository}/_manifests/tags/{item.tag}/current/link",
        f"{repository}/_manifests/tags/{item.tag}/index/sha256/{_hex(item.digest)}/link",
    }
    for digest in manifests:
        files.add(f"{repository}/_manifests/revisions/sha256/{_hex(digest)}/link")
    for digest in blobs:
        files.add(f"{repository}/_layers/sha256/{_hex(digest)}/link")
    for digest in manifests + blobs:
        files.add(f"{V2}/blobs/sha256/{_hex(digest)[:2]}/{_hex(digest)}/data")
    return files


def _assert_same_files(
    wharf: dict[str, bytes], distribution: dict[str, bytes], content: list[Pushed], kind: str
) -> None:
    """Both registries stored exactly the files (or objects) Distribution's layout names for
    ``content``, with the same bytes, besides wharf's own indexes, which Distribution never
    reads: the catalog index under ``wharf/`` and each revision's tags under ``_digesttags``."""
    wharf = {
        path: data
        for path, data in wharf.items()
        if "/_digesttags/" not in path and not path.lstrip("/").startswith("wharf/")
    }
    expected: set[str] = set()
    for item in content:
        expected |= _expected_files(item)
    assert set(distribution) == expected
    assert sorted(set(wharf) - expected) == [], f"{kind} wharf writes that Distribution does not"
    assert sorted(expected - set(wharf)) == [], f"{kind} Distribution writes that wharf does not"
    for path, data in distribution.items():
        assert wharf[path] == data, path


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def test_wharf_writes_the_files_distribution_writes(
    skopeo: Skopeo, content: list[Pushed], tmp_path: Path
) -> None:
    with _wharf_on(tmp_path / "wharf") as server:
        _push(skopeo, server, content)
    with _reference_on(tmp_path / "distribution") as server:
        _push(skopeo, server, content)
    wharf = _tree(tmp_path / "wharf")
    distribution = _tree(tmp_path / "distribution")

    _assert_same_files(wharf, distribution, content, "files")

    # Every link holds "sha256:<hex>" with no newline: a tag's current link its manifest's
    # digest, every other link the digest its directory is named after.
    for item in content:
        repository = tmp_path / "wharf" / V2 / "repositories" / item.repository
        current = repository / "_manifests" / "tags" / item.tag / "current" / "link"
        assert current.read_bytes() == item.digest.encode()
        for link in repository.rglob("link"):
            if link.parent.name != "current":
                assert link.read_bytes() == f"sha256:{link.parent.name}".encode(), link
        manifest = tmp_path / "wharf" / V2 / "blobs" / "sha256"
        data = (manifest / _hex(item.digest)[:2] / _hex(item.digest) / "data").read_bytes()
        assert json.loads(data)["mediaType"] == item.built.media_type


def _put_blob(server: Registry, repository: str, data: bytes) -> dict[str, object]:
    digest = sha256_digest(data)
    started = httpx.post(f"{server.url}/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = httpx.URL(server.url).join(started.headers["location"])
    done = httpx.put(
        location.copy_merge_params({"digest": digest}),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


def _put_manifest(server: Registry, repository: str, reference: str, document: object) -> str:
    data = json.dumps(document).encode()
    response = httpx.put(
        f"{server.url}/v2/{repository}/manifests/{reference}",
        content=data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == sha256_digest(data)
    return sha256_digest(data)


def _artifact(server: Registry, repository: str, payload: bytes, **extra: object) -> object:
    config = {**_put_blob(server, repository, b"{}"), "mediaType": EMPTY}
    layer = _put_blob(server, repository, payload)
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.wharf.test.v1",
        "config": config,
        "layers": [layer],
        **extra,
    }


@pytest.mark.parametrize("direction", ["wharf-to-distribution", "distribution-to-wharf"])
def test_referrers_survive_a_change_of_server(tmp_path: Path, direction: str) -> None:
    """A manifest with a subject, and its subject, are served after the tree changes hands;
    Distribution skips wharf's own ``_referrers`` index."""
    root = tmp_path / "root"
    first, second = (
        (_wharf_on(root), _reference_on(root))
        if direction == "wharf-to-distribution"
        else (_reference_on(root), _wharf_on(root))
    )
    repository = "compat/artifacts"
    with first as server:
        subject_document = _artifact(server, repository, b"the subject")
        subject = _put_manifest(server, repository, "subject", subject_document)
        subject_size = len(json.dumps(subject_document).encode())
        descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size}
        referrer = _put_manifest(
            server,
            repository,
            "signature",
            _artifact(server, repository, b"a signature", subject=descriptor),
        )
    with second as server:
        for reference, digest in (("subject", subject), ("signature", referrer)):
            for ref in (reference, digest):
                response = httpx.get(
                    f"{server.url}/v2/{repository}/manifests/{ref}",
                    headers={"Accept": OCI_MANIFEST},
                )
                assert response.status_code == 200, response.text
                assert response.headers["docker-content-digest"] == digest
        tags = httpx.get(f"{server.url}/v2/{repository}/tags/list").json()["tags"]
        assert sorted(tags) == ["signature", "subject"]
        assert httpx.get(f"{server.url}/v2/_catalog").json() == {"repositories": [repository]}
        if isinstance(server, WharfServer):
            listing = httpx.get(f"{server.url}/v2/{repository}/referrers/{subject}")
            assert listing.status_code == 200, listing.text
