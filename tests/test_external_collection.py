"""A garbage collection run from a shell beside serving registries removes a manifest that
every worker has cached: afterwards no worker of any instance serves it. One instance of two
workers learns of it through this machine's shared change tokens, two instances through
Redis."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.redis_server import RedisServer, needs_redis
from tests.support.server import WharfServer

pytestmark = [pytest.mark.server, pytest.mark.slow]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_NAME = "collected/app"
#: Fresh connections per instance: enough that every worker of it answers some.
_CONNECTIONS = 12


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push(url: str) -> tuple[str, list[str]]:
    """An image tagged ``old``; its manifest digest and blob digests."""
    config = json.dumps({"os": "linux", "nonce": os.urandom(8).hex()}).encode()
    layer = os.urandom(100_000)
    with httpx.Client(base_url=url) as http:
        for blob in (config, layer):
            response = http.post(
                f"/v2/{_NAME}/blobs/uploads/", params={"digest": _digest(blob)}, content=blob
            )
            assert response.status_code == 201, response.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": _digest(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": _digest(layer),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        response = http.put(
            f"/v2/{_NAME}/manifests/old", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert response.status_code == 201, response.text
    return _digest(manifest), [_digest(config), _digest(layer)]


def _statuses(urls: list[str], path: str) -> set[int]:
    """What every instance answers, each on many new connections (so on each worker)."""
    seen: set[int] = set()
    for url in urls:
        for _ in range(_CONNECTIONS):
            with httpx.Client(base_url=url) as fresh:
                seen.add(fresh.get(path, headers={"Accept": OCI_MANIFEST}).status_code)
    return seen


def _collect(server: WharfServer) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wharf",
            "garbage-collect",
            "--online",
            "--grace",
            "0s",
            "--delete-untagged",
            str(server.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(params=["workers", pytest.param("instances", marks=needs_redis)])
def servers(request: pytest.FixtureRequest) -> Iterator[list[WharfServer]]:
    if request.param == "workers":
        with WharfServer(workers=2) as server:
            yield [server]
        return
    with RedisServer() as redis:
        settings: dict[str, Any] = {"redis": {"addr": redis.addr}}
        first = WharfServer(workers=2, config=settings)
        storage = {"filesystem": {"rootdirectory": str(first.root)}}
        second = WharfServer(storage=storage, workers=2, config=settings)
        with first, second:
            yield [first, second]


def test_no_worker_serves_what_a_collection_removed(servers: list[WharfServer]) -> None:
    urls = [server.url for server in servers]
    manifest, blobs = _push(urls[0])
    assert _statuses(urls, f"/v2/{_NAME}/manifests/{manifest}") == {200}  # cached everywhere
    with httpx.Client(base_url=urls[-1]) as http:
        assert http.delete(f"/v2/{_NAME}/manifests/old").status_code == 202  # the tag only
    assert _statuses(urls, f"/v2/{_NAME}/manifests/{manifest}") == {200}
    _collect(servers[0])
    assert _statuses(urls, f"/v2/{_NAME}/manifests/{manifest}") == {404}
    for blob in blobs:
        assert _statuses(urls, f"/v2/{_NAME}/blobs/{blob}") == {404}
