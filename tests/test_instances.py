"""Two wharf instances on the same storage and the same Redis, as behind one load balancer:
either serves what the other stored, continues the other's uploads, and never serves a tag
the other has moved or deleted, not even right after."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.support.redis_server import RedisServer, needs_redis
from tests.support.server import WharfServer, free_port
from tests.support.urls import with_query

pytestmark = [pytest.mark.server, needs_redis]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _instances(redis: RedisServer | None) -> tuple[WharfServer, WharfServer]:
    def config() -> dict[str, Any]:
        settings: dict[str, Any] = {"http": {"debug": {"addr": f"127.0.0.1:{free_port()}"}}}
        if redis is not None:
            settings["redis"] = {"addr": redis.addr}
        return settings

    first = WharfServer(workers=2, config=config())
    second = WharfServer(
        storage={"filesystem": {"rootdirectory": str(first.root)}}, workers=2, config=config()
    )
    return first, second


def _metrics(server: WharfServer, name: str) -> float:
    """The sum of a metric's samples on the server's debug listener (flushed every second)."""
    addr = yaml.safe_load(server.config_path.read_text())["http"]["debug"]["addr"]
    debug = f"http://{addr}/metrics"
    total = 0.0
    for line in httpx.get(debug).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def servers(redis_server: RedisServer) -> Iterator[tuple[WharfServer, WharfServer]]:
    first, second = _instances(redis_server)
    with first, second:
        yield first, second


@pytest.fixture(scope="module")
def pair(servers: tuple[WharfServer, WharfServer]) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        httpx.Client(base_url=servers[0].url) as a,
        httpx.Client(base_url=servers[1].url) as b,
    ):
        yield a, b


def _push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    response = client.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": _digest(data)}, content=data
    )
    assert response.status_code == 201, response.text
    return _digest(data)


def _manifest(config: bytes, layers: list[bytes], **annotations: str) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER, "digest": _digest(layer), "size": len(layer)}
                for layer in layers
            ],
            "annotations": annotations,
        }
    ).encode()


def _put(client: httpx.Client, name: str, reference: str, manifest: bytes) -> str:
    response = client.put(
        f"/v2/{name}/manifests/{reference}",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    return str(response.headers["Docker-Content-Digest"])


def test_push_through_one_pull_through_the_other(
    pair: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = pair
    config = b'{"architecture":"amd64","os":"linux"}'
    layers = [os.urandom(300_000), os.urandom(1000)]
    for blob in (config, *layers):
        _push_blob(a, "shared/app", blob)
    manifest = _manifest(config, layers)
    digest = _put(a, "shared/app", "v1", manifest)
    pulled = b.get("/v2/shared/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert pulled.status_code == 200
    assert pulled.content == manifest
    assert pulled.headers["Docker-Content-Digest"] == digest
    for blob in (config, *layers):
        assert b.get(f"/v2/shared/app/blobs/{_digest(blob)}").content == blob
    assert "v1" in b.get("/v2/shared/app/tags/list").json()["tags"]
    assert "shared/app" in b.get("/v2/_catalog").json()["repositories"]


def test_a_chunked_upload_alternates_between_them(
    pair: tuple[httpx.Client, httpx.Client],
) -> None:
    data = os.urandom(5_000_000)
    clients = list(pair)
    location = clients[0].post("/v2/shared/chunks/blobs/uploads/").headers["Location"]
    offset = 0
    for index, start in enumerate(range(0, len(data), 1_000_000)):
        chunk = data[start : start + 1_000_000]
        response = clients[index % 2].patch(
            location,
            content=chunk,
            headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
        )
        assert response.status_code == 202, response.text
        offset += len(chunk)
        location = response.headers["Location"]
    status = clients[0].get(location)
    assert status.headers["Range"] == f"0-{len(data) - 1}"
    done = clients[1].put(with_query(location, digest=_digest(data)))
    assert done.status_code == 201, done.text
    assert clients[0].get(f"/v2/shared/chunks/blobs/{_digest(data)}").content == data


def _latest(client: httpx.Client, name: str) -> httpx.Response:
    return client.get(f"/v2/{name}/manifests/latest", headers={"Accept": OCI_MANIFEST})


def test_tag_moves_and_deletes_are_seen_at_once_on_the_other(
    pair: tuple[httpx.Client, httpx.Client], servers: tuple[WharfServer, WharfServer]
) -> None:
    clients = list(pair)
    name = "shared/moving"
    config = b'{"architecture":"arm64","os":"linux"}'
    _push_blob(clients[0], name, config)
    for round_ in range(60):
        writer, reader = clients[round_ % 2], clients[(round_ + 1) % 2]
        # Both instances (and their workers) have the tag cached from the last round.
        for client in clients:
            for _ in range(3):
                _latest(client, name)
        digest = _put(writer, name, "latest", _manifest(config, [], round=str(round_)))
        # At once, on the same connection and on fresh ones (other workers), never the old.
        assert _latest(reader, name).headers["Docker-Content-Digest"] == digest
        with httpx.Client(base_url=str(reader.base_url)) as fresh:
            assert _latest(fresh, name).headers["Docker-Content-Digest"] == digest
        if round_ % 10 == 9:
            assert writer.delete(f"/v2/{name}/manifests/latest").status_code == 202
            assert _latest(reader, name).status_code == 404
            with httpx.Client(base_url=str(reader.base_url)) as fresh:
                assert _latest(fresh, name).status_code == 404
            tags = reader.get(f"/v2/{name}/tags/list").json()["tags"] or []
            assert "latest" not in tags
            _put(writer, name, "latest", _manifest(config, [], round=f"{round_}-again"))
    # Served through the caches, not around them: the subscriptions were up all along.
    time.sleep(1.5)  # the workers' metrics reach the debug listener every second
    for server in servers:
        assert _metrics(server, "wharf_cache_hits_total") > 100
        assert _metrics(server, "wharf_redis_barriers_total") > 0
        assert _metrics(server, "wharf_redis_errors_total") == 0


def test_without_redis_instances_of_one_machine_share_change_tokens() -> None:
    """Instances on one machine, on one storage, meet in its shared memory without Redis (the
    tokens are named after the storage): neither serves a tag the other moved. Instances on
    several machines need Redis for that."""
    first, second = _instances(None)
    with (
        first,
        second,
        httpx.Client(base_url=first.url) as a,
        httpx.Client(base_url=second.url) as b,
    ):
        config = b'{"architecture":"s390x","os":"linux"}'
        _push_blob(a, "alone", config)
        old = _put(a, "alone", "latest", _manifest(config, [], v="1"))
        for _ in range(4):  # cached by both of b's workers
            assert _latest(b, "alone").headers["Docker-Content-Digest"] == old
        new = _put(a, "alone", "latest", _manifest(config, [], v="2"))
        assert new != old
        for _ in range(4):
            assert _latest(b, "alone").headers["Docker-Content-Digest"] == new
