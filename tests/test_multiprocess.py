"""Several wharf processes on one storage root: any of them continues any upload, and a tag
changed through one worker is never served stale by another."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import WharfServer
from tests.support.urls import with_query

pytestmark = pytest.mark.server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def pair() -> Iterator[tuple[WharfServer, WharfServer]]:
    first = WharfServer(workers=1)
    second = WharfServer(storage={"filesystem": {"rootdirectory": str(first.root)}}, workers=1)
    with first, second:
        yield first, second


def test_chunks_alternate_between_processes(pair: tuple[WharfServer, WharfServer]) -> None:
    data = os.urandom(5_000_000)
    chunks = [data[i : i + 1_000_000] for i in range(0, len(data), 1_000_000)]
    servers = [httpx.Client(base_url=s.url) for s in pair]
    try:
        _alternate(servers, data, chunks)
    finally:
        for client in servers:
            client.close()


def _alternate(servers: list[httpx.Client], data: bytes, chunks: list[bytes]) -> None:
    start = servers[0].post("/v2/shared/blobs/uploads/")
    assert start.status_code == 202
    location = start.headers["Location"]
    offset = 0
    for index, chunk in enumerate(chunks):
        response = servers[index % 2].patch(
            location,
            content=chunk,
            headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
        )
        assert response.status_code == 202, response.text
        offset += len(chunk)
        location = response.headers["Location"]
    done = servers[1].put(with_query(location, digest=_digest(data)))
    assert done.status_code == 201, done.text
    assert servers[0].get(f"/v2/shared/blobs/{_digest(data)}").content == data


def test_upload_survives_restart() -> None:
    data = os.urandom(3_000_000)
    with WharfServer() as server:
        with httpx.Client(base_url=server.url) as http:
            location = http.post("/v2/restart/blobs/uploads/").headers["Location"]
            patched = http.patch(location, content=data[:2_000_000])
            assert patched.status_code == 202
            location = patched.headers["Location"]
        with server.stopped():
            pass
        with httpx.Client(base_url=server.url) as http:
            _finish(http, location, data)


def _finish(http: httpx.Client, location: str, data: bytes) -> None:
    status = http.get(location)
    assert status.headers["Range"] == "0-1999999"
    location = status.headers["Location"]
    response = http.put(with_query(location, digest=_digest(data)), content=data[2_000_000:])
    assert response.status_code == 201, response.text


def test_tag_moves_are_seen_at_once_by_every_worker() -> None:
    with WharfServer(workers=2) as server, httpx.Client(base_url=server.url) as http:
        config = b'{"architecture":"amd64","os":"linux"}'
        http.post("/v2/moving/blobs/uploads/", params={"digest": _digest(config)}, content=config)
        digests = []
        for round_ in range(20):
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": _digest(config),
                        "size": len(config),
                    },
                    "layers": [],
                    "annotations": {"round": str(round_)},
                }
            ).encode()
            put = http.put(
                "/v2/moving/manifests/latest",
                content=manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )
            assert put.status_code == 201
            digests.append(put.headers["Docker-Content-Digest"])
            # New connections spread over both workers; each must see the new tag at once.
            for _ in range(6):
                with httpx.Client(base_url=server.url) as fresh:
                    got = fresh.get("/v2/moving/manifests/latest")
                    assert got.headers["Docker-Content-Digest"] == digests[-1]
        deleted = http.delete("/v2/moving/manifests/latest")
        assert deleted.status_code == 202
        for _ in range(6):
            with httpx.Client(base_url=server.url) as fresh:
                assert fresh.get("/v2/moving/manifests/latest").status_code == 404
