"""The API emits push, pull, mount and delete events through the service decorators, in the
order the requests were served, to a real HTTP endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import OCI_MANIFEST, push_blob, push_image, sha256
from tests.support.webhook import WebhookReceiver
from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.config.operations import EndpointConfig, NotificationsConfig
from wharf.notifications import EVENTS_MEDIA_TYPE


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


def _app(tmp_path: Path, receiver: WebhookReceiver, **endpoint: Any) -> WharfApp:
    config = Config(
        storage=StorageConfig(
            parameters={"rootdirectory": str(tmp_path / "data")}, delete_enabled=True
        ),
        http=HTTPConfig(secret="s", host="https://registry.example"),
        notifications=NotificationsConfig(
            (
                EndpointConfig(
                    "test",
                    receiver.url,
                    headers={"Authorization": ("Bearer t",)},
                    backoff=timedelta(milliseconds=50),
                    **endpoint,
                ),
            ),
            include_references=True,
        ),
    )
    return create_app(config)


@pytest.fixture
async def client(tmp_path: Path, receiver: WebhookReceiver) -> AsyncIterator[httpx.AsyncClient]:
    app = _app(tmp_path, receiver)
    app.start_background()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as http:
        yield http
    await app.aclose()


def _summary(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [
        (
            event["action"],
            event["target"].get("repository", ""),
            event["target"].get("tag", "") or event["target"].get("mediaType", ""),
            event["target"].get("digest", ""),
        )
        for event in events
    ]


async def test_push_pull_mount_delete(client: httpx.AsyncClient, receiver: WebhookReceiver) -> None:
    digest, manifest = await push_image(client, "app", "v1", layer_count=1)
    config_digest = sha256(b'{"architecture": "amd64", "os": "linux", "seed": "x"}')
    layer = b"layer 0 of x" * 100
    assert (await client.head("/v2/app/manifests/v1")).status_code == 200  # a check, no event
    assert (await client.get("/v2/app/manifests/v1")).status_code == 200
    assert (await client.get(f"/v2/app/blobs/{sha256(layer)}")).content == layer
    mounted = await client.post(
        "/v2/copy/blobs/uploads/", params={"mount": sha256(layer), "from": "app"}
    )
    assert mounted.status_code == 201
    assert (await client.delete("/v2/app/manifests/v1")).status_code == 202
    assert (await client.delete(f"/v2/app/manifests/{digest}")).status_code == 202
    assert (await client.delete(f"/v2/copy/blobs/{sha256(layer)}")).status_code == 202

    events = await asyncio.to_thread(receiver.wait_for, 9)
    blob = "application/octet-stream"
    assert _summary(events) == [
        ("push", "app", blob, config_digest),
        ("push", "app", blob, sha256(layer)),
        ("push", "app", "v1", digest),
        ("pull", "app", "v1", digest),
        ("pull", "app", blob, sha256(layer)),
        ("mount", "copy", blob, sha256(layer)),
        ("delete", "app", "v1", ""),
        ("delete", "app", "", digest),
        ("delete", "copy", "", sha256(layer)),
    ]
    pushed = events[2]["target"]
    assert pushed["mediaType"] == OCI_MANIFEST
    assert pushed["size"] == pushed["length"] == len(manifest)
    assert pushed["url"] == f"https://registry.example/v2/app/manifests/{digest}"
    assert [ref["digest"] for ref in pushed["references"]] == [config_digest, sha256(layer)]
    assert events[5]["target"]["fromRepository"] == "app"
    assert events[5]["target"]["size"] == len(layer)
    assert events[3]["request"]["method"] == "GET"
    assert events[3]["request"]["id"]
    assert len({event["id"] for event in events}) == 9
    delivery = receiver.deliveries[0]
    assert delivery.headers["Content-Type"] == EVENTS_MEDIA_TYPE
    assert delivery.headers["Authorization"] == "Bearer t"


async def test_ignored_actions_and_media_types(tmp_path: Path, receiver: WebhookReceiver) -> None:
    app = _app(
        tmp_path,
        receiver,
        ignored_actions=("pull",),
        ignored_media_types=("application/octet-stream",),
    )
    app.start_background()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as client:
            digest, _ = await push_image(client, "app", "v1")
            await client.get("/v2/app/manifests/v1")
            await push_blob(client, "app", b"more")
            await client.delete("/v2/app/manifests/v1")
        events = await asyncio.to_thread(receiver.wait_for, 2)
        await asyncio.sleep(0.2)
        assert _summary(receiver.events()) == [
            ("push", "app", "v1", digest),
            ("delete", "app", "v1", ""),
        ]
        assert len(events) == 2
    finally:
        await app.aclose()


async def test_every_pull_is_reported_also_repeated_ones(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    digest, _ = await push_image(client, "again", "v1", layer_count=1)
    pushes = len(await asyncio.to_thread(receiver.wait_for, 3))
    for _ in range(3):
        assert (await client.head("/v2/again/manifests/v1")).status_code == 200
        assert (await client.get("/v2/again/manifests/v1")).status_code == 200
    await asyncio.to_thread(receiver.wait_for, pushes + 3)
    await asyncio.sleep(0.2)
    assert _summary(receiver.events()[pushes:]) == [("pull", "again", "v1", digest)] * 3


async def test_a_push_with_tag_parameters_is_one_push_per_tag(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    """``PUT /manifests/<digest>?tag=a&tag=b`` notifies as pushing by each tag in turn does,
    with the digest pushed (sha512 here); a push by digest alone notifies once, untagged."""
    config = b'{"os": "linux"}'
    config_digest = await push_blob(client, "app", config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    digest = "sha512:" + hashlib.sha512(manifest).hexdigest()
    for params in ([("tag", "a"), ("tag", "b"), ("tag", "a")], []):
        pushed = await client.put(
            f"/v2/app/manifests/{digest}",
            params=params,
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert pushed.status_code == 201, pushed.text
    events = await asyncio.to_thread(receiver.wait_for, 4)
    assert _summary(events) == [
        ("push", "app", "application/octet-stream", config_digest),
        ("push", "app", "a", digest),
        ("push", "app", "b", digest),
        ("push", "app", OCI_MANIFEST, digest),
    ]
    assert {event["target"]["url"] for event in events[1:]} == {
        f"https://registry.example/v2/app/manifests/{digest}"
    }
