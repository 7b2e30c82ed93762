"""The tus endpoint in process: what a request to it does beside storing bytes (events,
metrics, CORS), and that two requests to one upload never both write."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.webhook import WebhookReceiver
from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.config.operations import EndpointConfig, NotificationsConfig
from wharf.config.tus import TusConfig, TusCors

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
ORIGIN = "https://app.example.com"


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
async def app(tmp_path: Path, receiver: WebhookReceiver) -> AsyncIterator[WharfApp]:
    config = Config(
        storage=StorageConfig(parameters={"rootdirectory": str(tmp_path / "data")}),
        http=HTTPConfig(secret="s", prefix="/registry"),
        notifications=NotificationsConfig(
            (EndpointConfig("test", receiver.url, backoff=timedelta(milliseconds=50)),)
        ),
        tus=TusConfig(enabled=True, path="/files/", cors=TusCors(allow_origins=(ORIGIN,))),
    )
    made = create_app(config)
    made.start_background()
    yield made
    await made.aclose()


@pytest.fixture
async def client(app: WharfApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as http:
        yield http


async def _create(client: httpx.AsyncClient, length: int, **metadata: str) -> str:
    response = await client.post(
        "/registry/files/",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": _metadata(**metadata)},
    )
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.startswith("/registry/files/")
    return location


async def test_creation_with_upload_announces_the_blob_and_the_manifest(
    client: httpx.AsyncClient, app: WharfApp, receiver: WebhookReceiver
) -> None:
    data = b"hello tus\n" * 100
    response = await client.post(
        "/registry/files/",
        headers={
            **PATCH,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": _metadata(repository="docs/notes", tag="v1", filename="n.txt"),
        },
        content=data,
    )
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == str(len(data))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert response.headers["docker-content-digest"] == digest
    manifest = response.headers["wharf-manifest-digest"]

    events = receiver.wait_for(2)
    pushed = {(e["action"], e["target"]["digest"], e["target"].get("tag", "")) for e in events}
    assert ("push", digest, "") in pushed
    assert ("push", manifest, "v1") in pushed
    counters = app.operations.metrics.counters
    assert counters[("wharf_tus_uploads_total", (("event", "created"),))] == 1
    assert counters[("wharf_tus_uploads_total", (("event", "finished"),))] == 1
    assert counters[("wharf_tus_finished_bytes_total", ())] == len(data)


async def test_two_patches_at_one_offset_never_both_succeed(client: httpx.AsyncClient) -> None:
    url = await _create(client, 20, repository="race/a")
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"a" * 5
        await release.wait()
        yield b"a" * 5

    first = asyncio.create_task(
        client.patch(url, headers={**PATCH, "Upload-Offset": "0"}, content=slow())
    )
    await asyncio.sleep(0.3)  # the first holds the upload's lease, mid-body
    second = await client.patch(url, headers={**PATCH, "Upload-Offset": "0"}, content=b"b" * 10)
    assert second.status_code == 423
    release.set()
    assert (await first).status_code == 204
    again = await client.patch(url, headers={**PATCH, "Upload-Offset": "0"}, content=b"b" * 10)
    assert again.status_code == 409
    head = await client.head(url, headers=TUS)
    assert head.headers["upload-offset"] == "10"


async def test_deferred_length_and_method_override(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/registry/files/",
        headers={**TUS, "Upload-Defer-Length": "1", "Upload-Metadata": _metadata(repository="d/e")},
    )
    url = response.headers["location"]
    head = await client.head(url, headers=TUS)
    assert head.headers["upload-defer-length"] == "1"
    assert "upload-length" not in head.headers
    overridden = await client.post(
        url,
        headers={**PATCH, "X-HTTP-Method-Override": "PATCH", "Upload-Offset": "0"},
        content=b"12345",
    )
    assert overridden.status_code == 204
    declared = await client.patch(
        url, headers={**PATCH, "Upload-Offset": "5", "Upload-Length": "8"}, content=b"678"
    )
    assert declared.status_code == 204
    assert declared.headers["docker-content-digest"] == (
        "sha256:" + hashlib.sha256(b"12345678").hexdigest()
    )


async def test_cors_for_an_allowed_origin_only(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/registry/files/",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "tus-resumable,upload-length,upload-metadata",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"tus-resumable", "upload-length", "upload-metadata"} <= {
        h.strip() for h in allowed.split(",")
    }
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    # Errors carry CORS headers too, so that a browser client can read them.
    refused = await client.post("/registry/files/", headers={"Origin": ORIGIN})
    assert refused.status_code == 412
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert "Location" in refused.headers["access-control-expose-headers"]
    other = await client.options("/registry/files/", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_a_finish_cut_short_is_completed_by_the_next_request(
    client: httpx.AsyncClient, app: WharfApp
) -> None:
    url = await _create(client, 10, repository="crash/a", tag="v1")
    patched = await client.patch(url, headers={**PATCH, "Upload-Offset": "0"}, content=b"12345")
    assert patched.status_code == 204
    assert app.tus is not None
    tus = app.tus.uploads
    upload = await tus.get(url.rpartition("/")[2])
    repository = tus.repository(upload)

    async def rest() -> AsyncIterator[bytes]:
        yield b"67890"

    # What finishing does up to a crash: the last bytes in, their digest recorded, the blob
    # published, and nothing more (the .info does not say finished, no tag).
    await repository.uploads.append(upload.ID, rest(), start=5)
    digest = "sha256:" + hashlib.sha256(b"1234567890").hexdigest()
    await tus._write(replace(upload, Publishing=digest))
    await repository.uploads.publish(upload.ID, start=10)

    head = await client.head(url, headers=TUS)
    assert head.status_code == 200
    assert head.headers["upload-offset"] == "10"
    assert head.headers["docker-content-digest"] == digest
    tagged = await client.get(
        "/registry/v2/crash/a/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert tagged.status_code == 200
    assert tagged.json()["layers"][0]["digest"] == digest
