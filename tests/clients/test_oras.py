"""The ORAS Python client (oras-py) against a running registry: artifacts, referrers, tags."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.clients import Registry
from tests.support.images import OCI, sha256_digest
from tests.support.reference_registry import ReferenceRegistry

oras_client = pytest.importorskip("oras.client", reason="the oras package is not installed")
oras_oci = pytest.importorskip("oras.oci")
oras_provider = pytest.importorskip("oras.provider")

pytestmark = pytest.mark.client

ARTIFACT_TYPE = "application/vnd.wharf.test.bundle.v1"
SIGNATURE_TYPE = "application/vnd.wharf.test.signature.v1"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"


class OrasClient(oras_provider.Registry):  # type: ignore[misc,name-defined]
    """oras-py as shipped, less two things.

    Its ``do_request`` retries every failure five times with sleeps of up to 83 s, which turns a
    failing server into minutes of waiting; the undecorated method fails at once. And oras-py
    0.2 has no parameter for a manifest's ``artifactType``, so it is set on the way out.
    """

    do_request = oras_provider.Registry.do_request.__wrapped__

    def __init__(self, host: str, artifact_type: str | None = None) -> None:
        super().__init__(hostname=host, insecure=True)
        self.artifact_type = artifact_type

    def upload_manifest(self, manifest: dict[str, Any], container: Any) -> Any:
        if self.artifact_type is not None:
            manifest = {**manifest, "artifactType": self.artifact_type}
        return super().upload_manifest(manifest, container)


def _files(directory: Path) -> dict[str, bytes]:
    rng = random.Random(42)
    contents = {
        "README.md": b"# a wharf test artifact\n",
        "model.bin": rng.randbytes(3 * 1024 * 1024 + 17),
        "empty.txt": b"",
    }
    directory.mkdir(parents=True)
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    return contents


def _manifest(registry: Registry, repository: str, reference: str) -> httpx.Response:
    response = httpx.get(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": f"{OCI.manifest}, {OCI.index}"},
    )
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_push_and_pull_an_artifact(registry: Registry, tmp_path: Path, chunked: bool) -> None:
    contents = _files(tmp_path / "in")
    client = OrasClient(registry.host, artifact_type=ARTIFACT_TYPE)
    target = f"{registry.host}/oras/artifact:v1"

    response = client.push(
        target,
        files=[str(tmp_path / "in" / name) for name in contents],
        manifest_config=f"none:{EMPTY_CONFIG}",
        manifest_annotations={"org.opencontainers.image.description": "wharf test"},
        disable_path_validation=True,
        do_chunked=chunked,
        chunk_size=1024 * 1024,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    digest = response.headers["Docker-Content-Digest"]

    served = _manifest(registry, "oras/artifact", "v1")
    assert served.headers["docker-content-digest"] == digest
    assert sha256_digest(served.content) == digest
    manifest = served.json()
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == EMPTY_CONFIG
    assert manifest["config"]["digest"] == sha256_digest(b"{}")
    titles = [
        layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]
    ]
    assert titles == list(contents)
    for layer, data in zip(manifest["layers"], contents.values(), strict=True):
        assert layer["digest"] == sha256_digest(data)
        assert layer["size"] == len(data)

    pulled = client.pull(target, outdir=str(tmp_path / "out"))
    assert sorted(Path(path).name for path in pulled) == sorted(contents)
    for name, data in contents.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_push_and_pull_a_directory(registry: Registry, tmp_path: Path) -> None:
    contents = _files(tmp_path / "tree")
    client = OrasClient(registry.host)
    target = f"{registry.host}/oras/directory:v1"

    client.push(target, files=[str(tmp_path / "tree")], disable_path_validation=True, quiet=True)
    client.pull(target, outdir=str(tmp_path / "out"))

    for name, data in contents.items():
        assert (tmp_path / "out" / "tree" / name).read_bytes() == data


def test_attach_a_referrer_and_list_it(registry: Registry, tmp_path: Path) -> None:
    _files(tmp_path / "in")
    target = f"{registry.host}/oras/subject:v1"
    pushed = OrasClient(registry.host, artifact_type=ARTIFACT_TYPE).push(
        target,
        files=[str(tmp_path / "in" / "README.md")],
        manifest_config=f"none:{EMPTY_CONFIG}",
        disable_path_validation=True,
        quiet=True,
    )
    subject_bytes = _manifest(registry, "oras/subject", "v1").content
    subject_digest = pushed.headers["Docker-Content-Digest"]
    assert sha256_digest(subject_bytes) == subject_digest
    subject = oras_oci.Subject(OCI.manifest, subject_digest, len(subject_bytes))

    signature = tmp_path / "signature.sig"
    signature.write_bytes(b"signed: " + subject_digest.encode())
    attached = OrasClient(registry.host, artifact_type=SIGNATURE_TYPE).push(
        f"{registry.host}/oras/subject:signature",
        files=[str(signature)],
        manifest_config=f"none:{EMPTY_CONFIG}",
        manifest_annotations={"org.opencontainers.image.created": "1970-01-01T00:00:00Z"},
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    assert attached.status_code == 201, attached.text
    referrer_digest = attached.headers["Docker-Content-Digest"]
    referrer = _manifest(registry, "oras/subject", referrer_digest).json()
    assert referrer["subject"] == {
        "mediaType": OCI.manifest,
        "digest": subject_digest,
        "size": len(subject_bytes),
    }

    if isinstance(registry, ReferenceRegistry):
        pytest.skip("Distribution 2.8 stores the referrer but has no referrers API")
    if "OCI-Subject" in attached.headers:
        assert attached.headers["OCI-Subject"] == subject_digest

    listing = httpx.get(f"{registry.url}/v2/oras/subject/referrers/{subject_digest}")
    assert listing.status_code == 200, listing.text
    assert listing.headers["content-type"] == OCI.index
    index = listing.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI.index
    (descriptor,) = index["manifests"]
    assert descriptor["digest"] == referrer_digest
    assert descriptor["mediaType"] == OCI.manifest
    assert descriptor["artifactType"] == SIGNATURE_TYPE
    assert descriptor["size"] == len(_manifest(registry, "oras/subject", referrer_digest).content)
    assert descriptor["annotations"] == {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"}

    filtered = httpx.get(
        f"{registry.url}/v2/oras/subject/referrers/{subject_digest}",
        params={"artifactType": SIGNATURE_TYPE},
    )
    assert filtered.status_code == 200
    assert [d["digest"] for d in filtered.json()["manifests"]] == [referrer_digest]
    assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"
    other = httpx.get(
        f"{registry.url}/v2/oras/subject/referrers/{subject_digest}",
        params={"artifactType": "application/vnd.wharf.test.other"},
    )
    assert other.status_code == 200
    assert other.json()["manifests"] == []

    # The referrer goes away with its manifest.
    deleted = httpx.delete(f"{registry.url}/v2/oras/subject/manifests/{referrer_digest}")
    assert deleted.status_code == 202, deleted.text
    after = httpx.get(f"{registry.url}/v2/oras/subject/referrers/{subject_digest}")
    assert after.status_code == 200
    assert after.json()["manifests"] == []


def test_tags_list_and_delete(registry: Registry, tmp_path: Path) -> None:
    contents = _files(tmp_path / "in")
    client = OrasClient(registry.host)
    tags = ["v1", "v2", "stable"]
    for number, tag in enumerate(tags):
        # Different annotations give each tag its own manifest, so deleting one keeps the rest.
        client.push(
            f"{registry.host}/oras/tags:{tag}",
            files=[str(tmp_path / "in" / "README.md")],
            manifest_annotations={"number": str(number)},
            disable_path_validation=True,
            quiet=True,
        )

    assert sorted(client.get_tags(f"{registry.host}/oras/tags")) == sorted(tags)
    assert client.delete_tag(f"{registry.host}/oras/tags", "v2") is True
    assert sorted(client.get_tags(f"{registry.host}/oras/tags")) == ["stable", "v1"]
    assert client.delete_tag(f"{registry.host}/oras/tags", "v2") is False
    manifest = client.get_manifest(f"{registry.host}/oras/tags:v1")
    assert manifest["annotations"] == {"number": "0"}
    blob = httpx.get(
        f"{registry.url}/v2/oras/tags/blobs/{manifest['layers'][0]['digest']}",
        follow_redirects=True,
    )
    assert blob.status_code == 200
    assert blob.content == contents["README.md"]
