"""Building and pushing test content through the HTTP API."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


async def push_blob(client: httpx.AsyncClient, name: str, data: bytes) -> str:
    digest = sha256(data)
    response = await client.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data
    )
    assert response.status_code == 201, response.text
    return digest


def image_manifest(
    config: bytes,
    layers: list[bytes],
    *,
    media_type: str = OCI_MANIFEST,
    config_type: str = OCI_CONFIG,
    layer_type: str = OCI_LAYER,
    **extra: Any,
) -> bytes:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config),
        "layers": [descriptor(layer_type, layer) for layer in layers],
        **extra,
    }
    return json.dumps(document, indent=2).encode()


async def put_manifest(
    client: httpx.AsyncClient, path: str, body: bytes, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    return await client.put(path, content=body, headers={"Content-Type": media_type})


async def push_image(
    client: httpx.AsyncClient,
    name: str,
    reference: str,
    *,
    seed: str = "x",
    layer_count: int = 2,
    media_type: str = OCI_MANIFEST,
    **extra: Any,
) -> tuple[str, bytes]:
    """Push config, layers and a manifest; returns the manifest digest and bytes."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layers = [f"layer {i} of {seed}".encode() * 100 for i in range(layer_count)]
    for blob in (config, *layers):
        await push_blob(client, name, blob)
    docker = media_type == DOCKER_MANIFEST
    manifest = image_manifest(
        config,
        layers,
        media_type=media_type,
        config_type=DOCKER_CONFIG if docker else OCI_CONFIG,
        layer_type=DOCKER_LAYER if docker else OCI_LAYER,
        **extra,
    )
    response = await client.put(
        f"/v2/{name}/manifests/{reference}", content=manifest, headers={"Content-Type": media_type}
    )
    assert response.status_code == 201, response.text
    return sha256(manifest), manifest


def error_codes(response: httpx.Response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]
