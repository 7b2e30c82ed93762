"""``storage.gc.enabled``: a served registry collects garbage by itself."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

from tests.support.server import WharfServer

pytestmark = pytest.mark.server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_scheduled_collection_removes_unreferenced_blobs() -> None:
    gc = {"enabled": True, "interval": "1s", "grace": "0s", "deleteuntagged": True}
    with (
        WharfServer(config={"storage": {"gc": gc}}, workers=2) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        kept_layer, doomed_layer, config = b"kept" * 100, b"doomed" * 100, b"{}"
        for blob in (kept_layer, doomed_layer, config):
            response = http.post(
                "/v2/sched/blobs/uploads/", params={"digest": _digest(blob)}, content=blob
            )
            assert response.status_code == 201

        def manifest(layer: bytes) -> bytes:
            return json.dumps(
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

        for tag, layer in (("kept", kept_layer), ("doomed", doomed_layer)):
            response = http.put(
                f"/v2/sched/manifests/{tag}",
                content=manifest(layer),
                headers={"Content-Type": OCI_MANIFEST},
            )
            assert response.status_code == 201
        doomed = _digest(manifest(doomed_layer))
        assert http.delete(f"/v2/sched/manifests/{doomed}").status_code == 202

        deadline = time.monotonic() + 60
        while http.get(f"/v2/sched/blobs/{_digest(doomed_layer)}").status_code != 404:
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.25)
        assert http.get(f"/v2/sched/blobs/{_digest(kept_layer)}").content == kept_layer
        assert http.get(f"/v2/sched/blobs/{_digest(config)}").content == config
        assert http.get("/v2/sched/manifests/kept").status_code == 200
