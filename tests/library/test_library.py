"""wharf.library over real storage: the filesystem (shared with a wharf server) and memory."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from wharf.library import (
    BlobUnknown,
    BlobUploadUnknown,
    Descriptor,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestReferences,
    ManifestUnknown,
    Namespace,
    NameUnknown,
    RepositoryRemover,
    Unsupported,
    open_registry,
    register_manifest_schema,
    unregister_manifest_schema,
)
from wharf.registry import media
from wharf.storage.driver.inmemory import InMemoryDriver
from wharf.testing import RunningRegistry


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}


def _image(config: bytes, layer: bytes, **extra: Any) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media.OCI_MANIFEST,
            "config": _descriptor(media.OCI_CONFIG, config),
            "layers": [_descriptor(media.OCI_LAYER, layer)],
            **extra,
        }
    ).encode()


@pytest.fixture(params=["inmemory", "filesystem"])
async def namespace(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Namespace]:
    storage: dict[str, Any] = (
        {"inmemory": {}}
        if request.param == "inmemory"
        else {"filesystem": {"rootdirectory": str(tmp_path / "data")}}
    )
    async with open_registry({"storage": storage}) as opened:
        yield opened


async def test_blobs_manifests_tags_and_enumeration(namespace: Namespace) -> None:
    repository = namespace.repository("team/app")
    config, layer = b"{}", b"layer bytes" * 1000
    assert (await repository.blobs.put(config)).digest.hex == hashlib.sha256(config).hexdigest()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(layer), 4096):
            yield layer[start : start + 4096]

    info = await repository.blobs.put(chunks(), _digest(layer))
    assert info.size == len(layer)
    assert (await repository.blobs.stat(_digest(layer))).size == len(layer)
    async with await repository.blobs.open(_digest(layer), offset=11) as reader:
        assert await reader.read(11) == b"layer bytes"
    assert await repository.blobs.get(_digest(layer)) == layer
    with pytest.raises(DigestInvalid):
        await repository.blobs.put(b"other", _digest(b"not it"))

    body = _image(config, layer)
    digest = await repository.manifests.put(body, tag="v1")
    assert str(digest) == _digest(body)
    assert await repository.manifests.exists(digest)
    stored = await repository.manifests.get("v1")
    assert (stored.body, stored.media_type) == (body, media.OCI_MANIFEST)
    await repository.tags.tag("latest", digest)
    assert await repository.tags.all() == ["latest", "v1"]
    assert await repository.tags.lookup(digest) == ["latest", "v1"]
    await repository.tags.untag("latest")
    assert await repository.tags.get("v1") == digest
    with pytest.raises(ManifestUnknown):
        await repository.tags.get("latest")

    assert [str(d) async for d in repository.manifests.enumerate()] == [str(digest)]
    assert sorted([str(d) async for d in repository.blobs.enumerate()]) == sorted(
        [_digest(config), _digest(layer)]
    )
    assert await namespace.repositories() == ["team/app"]
    assert {str(b.digest) async for b in namespace.blobs()} == {
        _digest(config),
        _digest(layer),
        str(digest),
    }

    with pytest.raises(ManifestBlobUnknown):
        await namespace.repository("other/app").manifests.put(body)
    other = namespace.repository("other/app")
    await other.blobs.mount(_digest(config))
    await other.blobs.mount(_digest(layer))
    await other.manifests.put(body)
    await other.blobs.unlink(_digest(layer))
    with pytest.raises(BlobUnknown):
        await other.blobs.stat(_digest(layer))

    await repository.manifests.delete(digest)
    assert not await repository.manifests.exists(digest)
    assert await repository.tags.all() == []


async def test_resumable_writer_by_id(namespace: Namespace) -> None:
    repository = namespace.repository("team/app")
    data = bytes(range(256)) * 4096
    writer = await repository.blobs.create()
    await writer.write(data[:300_000])
    # Another handle, as another process would get it, continues the session.
    resumed = await namespace.repository("team/app").blobs.resume(writer.id)
    assert resumed.size == 300_000
    await resumed.write(data[300_000:700_000])
    info = await resumed.commit(_digest(data), data[700_000:])
    assert info.size == len(data)
    assert await repository.blobs.get(info.digest, max_size=len(data)) == data
    with pytest.raises(BlobUploadUnknown):
        await repository.blobs.resume(writer.id)
    cancelled = await repository.blobs.create()
    await cancelled.write(b"abc")
    await cancelled.cancel()
    with pytest.raises(BlobUploadUnknown):
        await repository.blobs.resume(cancelled.id)


async def test_referrers(namespace: Namespace) -> None:
    repository = namespace.repository("team/app")
    config, layer = b"{}", b"x"
    await repository.blobs.put(config)
    await repository.blobs.put(layer)
    subject = await repository.manifests.put(_image(config, layer), tag="v1")
    signature = _image(
        config,
        layer,
        artifactType="application/vnd.example.sig",
        subject={"mediaType": media.OCI_MANIFEST, "digest": str(subject), "size": 1},
    )
    referrer = await repository.manifests.put(signature)
    found = await repository.referrers(subject)
    assert [d["digest"] for d in found] == [str(referrer)]
    assert await repository.referrers(subject, "application/other") == []


async def test_repository_remover(namespace: Namespace) -> None:
    app, nested = namespace.repository("team/app"), namespace.repository("team/app/cache")
    for repository in (app, nested):
        blob = await repository.blobs.put(b"{}")
        await repository.blobs.put(b"x")
        await repository.manifests.put(_image(b"{}", b"x"), tag="v1")
    pending = await app.blobs.create()
    await pending.write(b"half")
    await RepositoryRemover(namespace).remove("team/app")
    assert await namespace.repositories() == ["team/app/cache"]
    assert await app.tags.all() == []  # its directory holds the nested repository
    assert [d async for d in app.manifests.enumerate()] == []
    with pytest.raises(BlobUploadUnknown):
        await app.blobs.resume(pending.id)
    assert await nested.tags.all() == ["v1"]
    # The blobs stay in the store for garbage collection.
    assert _digest(b"{}") in {str(b.digest) async for b in namespace.blobs()}
    assert str(blob.digest) == _digest(b"{}")
    with pytest.raises(NameUnknown):
        await namespace.remove("team/app")


HELM = "application/vnd.example.chart.v1+json"


def _chart(document: Mapping[str, Any]) -> ManifestReferences:
    files = document.get("files")
    if not isinstance(files, list) or not files:
        raise ValueError("files must be a non-empty array")
    return ManifestReferences(
        blobs=[Descriptor.from_json(item, path=f"files[{i}]") for i, item in enumerate(files)],
        artifact_type=HELM,
    )


async def test_registered_manifest_schema_is_validated(namespace: Namespace) -> None:
    repository = namespace.repository("charts/app")
    blob = await repository.blobs.put(b"chart")
    good = json.dumps(
        {
            "mediaType": HELM,
            "files": [{"mediaType": "application/x-tar", "digest": str(blob.digest), "size": 5}],
        }
    ).encode()
    with pytest.raises(ManifestInvalid):
        await repository.manifests.put(good)  # not registered yet
    register_manifest_schema(HELM, _chart)
    try:
        with pytest.raises(ValueError, match="registered already"):
            register_manifest_schema(HELM, _chart)
        with pytest.raises(ValueError, match="built in"):
            register_manifest_schema(media.OCI_MANIFEST, _chart)
        digest = await repository.manifests.put(good, tag="1.0")
        assert (await repository.manifests.get("1.0")).media_type == HELM
        with pytest.raises(ManifestInvalid) as refused:
            await repository.manifests.put(json.dumps({"mediaType": HELM}).encode())
        assert "files must be a non-empty array" in str(refused.value.detail)
        missing = good.replace(blob.digest.hex.encode(), b"0" * 64)
        with pytest.raises(ManifestBlobUnknown):
            await repository.manifests.put(missing)
        assert await repository.manifests.exists(digest)
    finally:
        unregister_manifest_schema(HELM)


async def test_a_failing_parser_or_an_undeclared_type_is_an_invalid_manifest(
    namespace: Namespace,
) -> None:
    def broken(document: Mapping[str, Any]) -> ManifestReferences:
        return ManifestReferences(blobs=[document["missing"]])

    kind = "application/vnd.example.broken.v1+json"
    repository = namespace.repository("charts/app")
    register_manifest_schema(kind, broken)
    try:
        with pytest.raises(ManifestInvalid):
            await repository.manifests.put(json.dumps({"mediaType": kind}).encode())
        # Served later with the type its body declares: the body must declare it.
        with pytest.raises(ManifestInvalid, match="manifest invalid") as undeclared:
            await repository.manifests.put(b'{"files": []}', kind)
        assert "mediaType is required" in str(undeclared.value.detail)
    finally:
        unregister_manifest_schema(kind)


async def test_readonly_refuses_writes(tmp_path: Path) -> None:
    root = str(tmp_path / "data")
    async with open_registry({"storage": {"filesystem": {"rootdirectory": root}}}) as writable:
        await writable.repository("a/b").blobs.put(b"x")
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {root}}}\n"
        "  maintenance: {readonly: {enabled: true}}\n"
    )
    async with open_registry(config) as readonly:
        repository = readonly.repository("a/b")
        assert await repository.blobs.exists(_digest(b"x"))
        with pytest.raises(Unsupported):
            await repository.blobs.put(b"y")
        with pytest.raises(Unsupported):
            await readonly.remove("a/b")


async def test_open_a_driver_and_bad_configurations() -> None:
    async with open_registry(InMemoryDriver()) as namespace:
        assert await namespace.repositories() == []
    with pytest.raises(ValueError, match="storage"):
        open_registry({"http": {}})
    with pytest.raises(ValueError, match="nosuchdriver"):
        open_registry({"storage": {"nosuchdriver": {}}})


@pytest.mark.server
async def test_a_server_sees_what_the_library_wrote(registry_server: RunningRegistry) -> None:
    """The library and a real wharf serve process on one filesystem: what the library writes
    is served at once, also where the server had cached the answer before."""
    name = f"lib/app-{uuid.uuid4().hex[:8]}"
    storage = {"filesystem": {"rootdirectory": str(registry_server.root)}}
    async with httpx.AsyncClient(base_url=registry_server.url) as http:
        before = (await http.get("/v2/_catalog")).json()["repositories"]
        assert name not in before  # and the server caches this catalog
        async with open_registry({"storage": storage}) as namespace:
            repository = namespace.repository(name)
            await repository.blobs.put(b"{}")
            await repository.blobs.put(b"x")
            digest = await repository.manifests.put(_image(b"{}", b"x"), tag="v1")
        answer = await http.get(f"/v2/{name}/manifests/v1", headers={"Accept": media.OCI_MANIFEST})
        assert answer.status_code == 200
        assert answer.headers["docker-content-digest"] == str(digest)
        assert name in (await http.get("/v2/_catalog")).json()["repositories"]
        async with open_registry({"storage": storage}) as namespace:
            await namespace.remove(name)
        assert name not in (await http.get("/v2/_catalog")).json()["repositories"]
        assert (await http.get(f"/v2/{name}/manifests/v1")).status_code == 404


def test_a_registered_type_is_pushed_and_pulled_over_http(registry: RunningRegistry) -> None:
    """The server in this process runs on the same services: a registered type is accepted
    over HTTP, validated by its parser, and served back."""
    client = registry.client
    archive = client.push_blob("charts/app", b"chart")
    chart = json.dumps(
        {
            "mediaType": HELM,
            "files": [{"mediaType": "application/x-tar", "digest": archive, "size": 5}],
        }
    ).encode()
    register_manifest_schema(HELM, _chart)
    try:
        digest = client.put_manifest("charts/app", "1.0", chart, HELM)
        fetched = client.get_manifest("charts/app", "1.0", accept=[HELM])
        assert (fetched.digest, fetched.body, fetched.media_type) == (digest, chart, HELM)
        answer = httpx.put(
            f"{registry.url}/v2/charts/app/manifests/bad",
            content=json.dumps({"mediaType": HELM, "files": []}).encode(),
            headers={"Content-Type": HELM},
        )
        assert answer.status_code == 400
        assert answer.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    finally:
        unregister_manifest_schema(HELM)
    refused = httpx.put(
        f"{registry.url}/v2/charts/app/manifests/2.0", content=chart, headers={"Content-Type": HELM}
    )
    assert refused.status_code == 400
