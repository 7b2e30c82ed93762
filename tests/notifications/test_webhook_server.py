"""A real wharf process notifying a real endpoint that fails twice before it accepts."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

from tests.support.server import WharfServer
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_events_in_order_and_retried_after_failures() -> None:
    with WebhookReceiver(500, 500) as receiver:
        config = {
            "notifications": {
                "endpoints": [
                    {
                        "name": "hook",
                        "url": receiver.url,
                        "timeout": "2s",
                        "threshold": 5,
                        "backoff": "100ms",
                        "headers": {"X-Token": ["secret"]},
                    }
                ]
            }
        }
        with (
            WharfServer(workers=1, config=config) as server,
            httpx.Client(base_url=server.url) as http,
        ):
            blobs = [b'{"architecture":"amd64","os":"linux"}', b"layer" * 1000]
            for blob in blobs:
                response = http.post(
                    "/v2/hooked/blobs/uploads/", params={"digest": _digest(blob)}, content=blob
                )
                assert response.status_code == 201
                time.sleep(0.3)  # separate envelopes: the first one meets the failures
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": _digest(blobs[0]),
                        "size": len(blobs[0]),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": _digest(blobs[1]),
                            "size": len(blobs[1]),
                        }
                    ],
                }
            ).encode()
            put = http.put(
                "/v2/hooked/manifests/v1",
                content=manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )
            assert put.status_code == 201
            pulled = http.get("/v2/hooked/manifests/v1", headers={"User-Agent": "test/1"})
            assert pulled.status_code == 200
            events = receiver.wait_for(4)
        statuses = [delivery.status for delivery in receiver.deliveries]
        assert statuses[:3] == [500, 500, 200]
        # The same envelope, the same event ids, until it was accepted.
        first_ids = [[event["id"] for event in d.events] for d in receiver.deliveries[:3]]
        assert first_ids[0] == first_ids[1] == first_ids[2]
        assert [(e["action"], e["target"]["digest"]) for e in events] == [
            ("push", _digest(blobs[0])),
            ("push", _digest(blobs[1])),
            ("push", _digest(manifest)),
            ("pull", _digest(manifest)),
        ]
        assert events[2]["target"]["tag"] == "v1"
        assert events[3]["request"]["useragent"] == "test/1"
        assert events[3]["request"]["host"] == server.host
        assert events[3]["target"]["url"] == f"{server.url}/v2/hooked/manifests/{_digest(manifest)}"
        assert events[0]["source"]["instanceID"] == events[3]["source"]["instanceID"]
        assert events[0]["source"]["addr"].endswith(f":{server.port}")
        assert all(d.headers["X-Token"] == "secret" for d in receiver.deliveries)
