"""wharf.client against real registries: wharf behind its token service, Debian's
docker-registry 2.8 behind htpasswd. Copies are checked with skopeo."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.support import write_htpasswd
from tests.support.clients import Skopeo, binary
from tests.support.faultproxy import FaultProxy
from tests.support.images import AMD64, ARM64, build_index
from tests.support.reference_registry import ReferenceRegistry, docker_registry_binary
from tests.support.server import WharfServer, free_port
from wharf.client import (
    AsyncRegistryClient,
    DockerConfig,
    LayoutImage,
    RegistryClient,
    RegistryImage,
    ResponseError,
    copy,
    static,
)

pytestmark = [pytest.mark.server]

USER, PASSWORD = "alice", "wonderland"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Target:
    name: str
    url: str
    host: str
    referrers: bool


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_htpasswd(tmp_path_factory.mktemp("users") / "htpasswd", {USER: PASSWORD})


@pytest.fixture(scope="module")
def token_wharf(users: Path) -> Iterator[WharfServer]:
    port = free_port()
    config = {
        "auth": {
            "token": {
                "realm": f"http://127.0.0.1:{port}/token",
                "service": f"127.0.0.1:{port}",
                "issuer": "wharf",
            },
            "tokenservice": {
                "users": str(users),
                "access": [
                    {"repository": "**", "pull": ["*"], "push": ["*"], "delete": ["*"]},
                    {"repository": "public/*", "anonymous": ["pull"]},
                    {"catalog": ["*"]},
                ],
            },
        }
    }
    with WharfServer(config=config, port=port, workers=2) as server:
        yield server


@pytest.fixture(scope="module", params=["wharf", "docker-registry"])
def target(request: pytest.FixtureRequest, users: Path) -> Iterator[Target]:
    if request.param == "wharf":
        server = request.getfixturevalue("token_wharf")
        yield Target("wharf", server.url, server.host, referrers=True)
        return
    if docker_registry_binary() is None:
        pytest.skip("docker-registry is not installed")
    config = {"auth": {"htpasswd": {"realm": "reference", "path": str(users)}}}
    with ReferenceRegistry(config=config) as reference:
        yield Target("docker-registry", reference.url, reference.host, referrers=False)


def _manifest(config: bytes, layers: list[bytes], **extra: Any) -> bytes:
    def descriptor(blob: bytes, media_type: str) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(config, "application/vnd.oci.image.config.v1+json"),
            "layers": [descriptor(b, "application/vnd.oci.image.layer.v1.tar") for b in layers],
            **extra,
        }
    ).encode()


async def test_blobs_manifests_tags_and_deletes(target: Target, tmp_path: Path) -> None:
    async with AsyncRegistryClient(
        target.url, credentials=static(USER, PASSWORD), chunk_size=1 << 20
    ) as client:
        assert await client.ping()
        config = b'{"os":"linux"}'
        big = os.urandom(3_500_000)  # four chunks
        assert await client.push_blob("client/app", config) == _digest(config)
        path = tmp_path / "big"
        path.write_bytes(big)
        progress: list[int] = []
        digest = await client.push_blob(
            "client/app", path, progress=lambda done, total: progress.append(done)
        )
        assert digest == _digest(big)
        assert progress[-1] == len(big)
        assert await client.push_blob("client/app", big) == digest  # there already: skipped
        assert await client.blob_size("client/app", digest) == len(big)
        assert await client.get_blob("client/app", digest) == big
        out = tmp_path / "out"
        assert await client.download_blob("client/app", digest, out) == len(big)
        assert out.read_bytes() == big
        manifest = _manifest(config, [big])
        for tag in ("v1", "v2", "v3"):
            assert await client.put_manifest("client/app", tag, manifest, OCI_MANIFEST) == (
                _digest(manifest)
            )
        fetched = await client.get_manifest("client/app", "v1")
        assert (fetched.body, fetched.digest) == (manifest, _digest(manifest))
        assert fetched.media_type == OCI_MANIFEST
        assert await client.manifest_digest("client/app", "v2") == _digest(manifest)
        assert await client.manifest_digest("client/app", "nope") is None
        assert await client.tags("client/app", page_size=1) == ["v1", "v2", "v3"]
        assert "client/app" in await client.catalog(page_size=1)
        assert await client.mount_blob("client/other", digest, "client/app")
        assert await client.blob_size("client/other", digest) == len(big)
        await client.delete_manifest("client/app", _digest(manifest))
        with pytest.raises(ResponseError) as missing:
            await client.get_manifest("client/app", _digest(manifest))
        assert missing.value.status == 404
        assert missing.value.code == "MANIFEST_UNKNOWN"
        never = _digest(b"never pushed")
        with pytest.raises(ResponseError) as unknown:
            await client.get_blob("client/app", never)
        assert (unknown.value.status, unknown.value.code) == (404, "BLOB_UNKNOWN")
        assert unknown.value.url == f"{target.url}/v2/client/app/blobs/{never}"


async def test_a_large_blob_downloads_as_ranges_at_once(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wharf.client import registry as module

    monkeypatch.setattr(module, "_PARALLEL_MIN", 1 << 20)
    big = os.urandom(5_000_001)
    async with AsyncRegistryClient(
        target.url, credentials=static(USER, PASSWORD), parallel=3
    ) as client:
        digest = await client.push_blob("client/ranges", big)
        moved: list[int] = []
        out = tmp_path / "out"
        size = await client.download_blob(
            "client/ranges", digest, out, progress=lambda done, total: moved.append(done)
        )
        assert size == len(big)
        assert out.read_bytes() == big
        assert moved[-1] == len(big)
        out.write_bytes(b"")
        with pytest.raises(ResponseError) as unknown:
            await client.download_blob("client/ranges", _digest(b"never pushed"), out)
        assert unknown.value.status == 404


async def test_referrers(token_wharf: WharfServer) -> None:
    async with AsyncRegistryClient(token_wharf.url, credentials=static(USER, PASSWORD)) as client:
        config = b"{}"
        await client.push_blob("client/refs", config)
        subject = _manifest(config, [])
        subject_digest = await client.put_manifest("client/refs", "v1", subject, OCI_MANIFEST)
        signature = _manifest(
            config,
            [],
            artifactType="application/x.signature",
            subject={"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject)},
        )
        await client.put_manifest("client/refs", _digest(signature), signature, OCI_MANIFEST)
        found = await client.referrers("client/refs", subject_digest)
        assert [entry["digest"] for entry in found] == [_digest(signature)]
        assert await client.referrers("client/refs", subject_digest, "x/other") == []


async def test_anonymous_pulls_where_allowed(token_wharf: WharfServer) -> None:
    async with AsyncRegistryClient(token_wharf.url, credentials=static(USER, PASSWORD)) as alice:
        await alice.push_blob("public/app", b"open to all")
    async with AsyncRegistryClient(token_wharf.url) as anonymous:
        assert await anonymous.get_blob("public/app", _digest(b"open to all")) == b"open to all"
        with pytest.raises(ResponseError) as refused:
            await anonymous.push_blob("public/app", b"not allowed")
        assert refused.value.status == 401


async def test_an_identity_token_from_docker_config(
    token_wharf: WharfServer, tmp_path: Path
) -> None:
    """``docker login`` keeps a refresh token for registries that issue one: the client uses
    it in an OAuth2 refresh grant."""
    async with httpx.AsyncClient() as http:
        granted = await http.post(
            f"{token_wharf.url}/token",
            data={
                "grant_type": "password",
                "username": USER,
                "password": PASSWORD,
                "service": token_wharf.host,
                "access_type": "offline",
                "client_id": "test",
            },
        )
    refresh = granted.json()["refresh_token"]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {token_wharf.host: {"identitytoken": refresh}}}))
    async with AsyncRegistryClient(token_wharf.url, credentials=DockerConfig(config)) as client:
        assert await client.push_blob("client/refreshed", b"by refresh token") == _digest(
            b"by refresh token"
        )


def test_a_chunked_upload_resumes_after_a_dropped_connection(token_wharf: WharfServer) -> None:
    data = os.urandom(2_500_000)
    with FaultProxy(token_wharf.url) as proxy:
        proxy.fail("PATCH /v2/client/resumed/blobs/uploads/*", "drop", after=1)
        with RegistryClient(
            proxy.endpoint, credentials=static(USER, PASSWORD), chunk_size=1 << 20
        ) as client:
            assert client.push_blob("client/resumed", data) == _digest(data)
            assert client.get_blob("client/resumed", _digest(data)) == data
        patches = [r for r in proxy.recorded() if r.method == "PATCH"]
        assert len(patches) == 4  # three chunks and the one retried


@pytest.mark.client
@pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed")
async def test_copies_between_registries_and_layouts(
    token_wharf: WharfServer, tmp_path: Path
) -> None:
    index = build_index(tmp_path / "source", tag="v1", platforms=(AMD64, ARM64), seed=9)
    credentials = static(USER, PASSWORD)
    async with AsyncRegistryClient(token_wharf.url, credentials=credentials) as client:
        source = LayoutImage(tmp_path / "source", "v1")
        pushed = await copy(source, RegistryImage(client, "client/multi", "v1"))
        assert pushed == index.digest
        moved: list[str] = []
        copied = await copy(
            RegistryImage(client, "client/multi", "v1"),
            RegistryImage(client, "client/mounted", "latest"),
            progress=lambda digest, done, total: moved.append(digest),
        )
        assert copied == index.digest
        assert moved == []  # every blob mounted, none moved
        arm_only = await copy(
            RegistryImage(client, "client/multi", index.digest),
            LayoutImage(tmp_path / "pulled", "v1"),
            platforms=lambda platform: platform.get("architecture") == "arm64",
        )
        assert arm_only == index.digest
    skopeo = Skopeo(tmp_path / "skopeo", server=token_wharf)
    raw = skopeo.inspect_raw(
        f"docker://{token_wharf.host}/client/mounted:latest", "--creds", f"{USER}:{PASSWORD}"
    )
    assert _digest(raw) == index.digest
    arm = next(image for image in index.images if image.platform == ARM64)
    skopeo.copy(
        f"oci:{tmp_path / 'pulled'}:v1",
        f"oci:{tmp_path / 'checked'}:v1",
        "--override-arch",
        "arm64",
        preserve_digests=False,
    )
    checked = json.loads((tmp_path / "checked" / "index.json").read_text())
    assert checked["manifests"][0]["digest"] == arm.digest


@pytest.mark.client
@pytest.mark.reference
@pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed")
@pytest.mark.skipif(docker_registry_binary() is None, reason="docker-registry is not installed")
async def test_copies_to_and_from_docker_registry_checked_with_skopeo(
    token_wharf: WharfServer, users: Path, tmp_path: Path
) -> None:
    """A multi-platform index from wharf (token auth) to docker-registry 2.8 (htpasswd) and
    back to a layout: the digests survive, and skopeo sees the same bytes and pulls them."""
    index = build_index(tmp_path / "source", tag="v1", platforms=(AMD64, ARM64), seed=21)
    credentials = static(USER, PASSWORD)
    config = {"auth": {"htpasswd": {"realm": "reference", "path": str(users)}}}
    with ReferenceRegistry(config=config) as reference:
        async with (
            AsyncRegistryClient(token_wharf.url, credentials=credentials) as wharf,
            AsyncRegistryClient(reference.url, credentials=credentials) as distribution,
        ):
            await copy(
                LayoutImage(tmp_path / "source", "v1"), RegistryImage(wharf, "to/reference", "v1")
            )
            moved: list[str] = []
            copied = await copy(
                RegistryImage(wharf, "to/reference", "v1"),
                RegistryImage(distribution, "from/wharf", "v1"),
                progress=lambda digest, done, total: moved.append(digest),
            )
            assert copied == index.digest
            assert moved  # across registries every blob moves
            back = await copy(
                RegistryImage(distribution, "from/wharf", index.digest),
                LayoutImage(tmp_path / "back", "v1"),
            )
            assert back == index.digest
        skopeo = Skopeo(tmp_path / "skopeo", server=reference)
        creds = ("--creds", f"{USER}:{PASSWORD}")
        raw = skopeo.inspect_raw(f"docker://{reference.host}/from/wharf:v1", *creds)
        assert _digest(raw) == index.digest
        skopeo.copy(
            f"docker://{reference.host}/from/wharf:v1",
            f"oci:{tmp_path / 'skopeo-pulled'}:v1",
            "--src-creds",
            f"{USER}:{PASSWORD}",
            all_images=True,
        )
    pulled = json.loads((tmp_path / "skopeo-pulled" / "index.json").read_text())
    assert pulled["manifests"][0]["digest"] == index.digest
    ours = json.loads((tmp_path / "back" / "index.json").read_text())
    tagged = [
        entry["digest"]
        for entry in ours["manifests"]
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == "v1"
    ]
    assert tagged == [index.digest]
