"""What the registry lets be absent is not missing: references ``validation`` does not require
of a push (an index's children of other platforms, an image's layers), and anything in a
repository that mirrors an upstream. Without those settings the same store is reported."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from tests.registry.check.support import found, revision_link
from wharf.api.app import create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.config.mirrors import MirrorConfig
from wharf.config.validation import PlatformConfig, ValidationConfig
from wharf.registry.check import Kind, check_storage
from wharf.storage.driver.factory import create_driver

pytestmark = pytest.mark.asyncio

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SPARSE = ValidationConfig(
    index_platforms="list", platform_list=(PlatformConfig("linux", "amd64"),), image_layers="none"
)


def _desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
        **extra,
    }


def _image(config: bytes, layer: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _desc("application/vnd.oci.image.config.v1+json", config),
            "layers": [_desc("application/vnd.oci.image.layer.v1.tar", layer)],
        }
    ).encode()


@pytest.fixture
def driver_name() -> str:
    return "filesystem"  # the check runs over storage that another app wrote


@pytest.fixture
async def sparse_store(storage: StorageConfig) -> StorageConfig:
    """A store holding, in ``app`` and ``up/app``, an image whose layer was never pushed and
    an index of it and of a linux/arm64 image never pushed either, as ``SPARSE`` allows."""
    app = create_app(Config(storage=storage, http=HTTPConfig(secret="s"), validation=SPARSE))
    transport = httpx.ASGITransport(app=app)
    config = b'{"os": "linux", "architecture": "amd64"}'
    image = _image(config, b"never pushed")
    arm = _image(b'{"os": "linux", "architecture": "arm64"}', b"arm layer")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                _desc(OCI_MANIFEST, image, platform={"os": "linux", "architecture": "amd64"}),
                _desc(OCI_MANIFEST, arm, platform={"os": "linux", "architecture": "arm64"}),
            ],
        }
    ).encode()
    async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
        for name in ("app", "up/app"):
            pushed = await client.post(
                f"/v2/{name}/blobs/uploads/",
                params={"digest": _desc("", config)["digest"]},
                content=config,
            )
            assert pushed.status_code == 201
            for reference, body, media_type in (
                ("v1", image, OCI_MANIFEST),
                ("all", index, OCI_INDEX),
            ):
                put = await client.put(
                    f"/v2/{name}/manifests/{reference}",
                    content=body,
                    headers={"Content-Type": media_type},
                )
                assert put.status_code == 201, put.text
    await app.aclose()
    return storage


async def _check(storage: StorageConfig, **options: Any) -> set[tuple[Kind, str]]:
    driver = create_driver(storage)
    try:
        return found(await check_storage(driver, recheck_delay=0, **options))
    finally:
        await driver.close()


async def test_what_validation_allows_is_not_missing(sparse_store: StorageConfig) -> None:
    assert await _check(sparse_store, validation=SPARSE) == set()
    mirrored = (MirrorConfig(url="http://127.0.0.1:1", prefix="up"),)
    assert await _check(sparse_store, validation=SPARSE, mirrors=mirrored) == set()


async def test_without_the_settings_the_same_store_is_reported(
    sparse_store: StorageConfig,
) -> None:
    config = b'{"os": "linux", "architecture": "amd64"}'
    image = _desc(OCI_MANIFEST, _image(config, b"never pushed"))["digest"]
    strict = await _check(sparse_store)
    assert {kind for kind, _ in strict} == {Kind.REFERENCE_MISSING}
    assert (Kind.REFERENCE_MISSING, revision_link("app", image)) in strict
    assert len(strict) == 4  # the image and the index, in each repository
    # Only the mirrored repository's content is let be, whatever validation says.
    mirrored = (MirrorConfig(url="http://127.0.0.1:1", prefix="up"),)
    reported = await _check(sparse_store, mirrors=mirrored)
    assert {path.split("/repositories/")[1].split("/_manifests")[0] for _, path in reported} == {
        "app"
    }
