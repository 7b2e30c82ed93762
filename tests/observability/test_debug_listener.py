"""``http.debug.addr`` on a real server: /metrics summed over the workers and moving with the
requests, /debug/health answering 503 with what fails, and the listener's life."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.observability.test_metrics import parse
from tests.support.server import WharfServer, free_port

pytestmark = pytest.mark.server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _debug_config(port: int, **extra: object) -> dict[str, object]:
    return {"http": {"debug": {"addr": f"127.0.0.1:{port}"}}, **extra}


def _scrape(port: int) -> dict[str, float]:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def _wait_for(port: int, name: str, value: float, timeout: float = 30) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        values = _scrape(port)
        if values.get(name, 0) >= value or time.monotonic() > deadline:
            return values
        time.sleep(0.1)


def _push(http: httpx.Client) -> bytes:
    config = b'{"architecture":"amd64","os":"linux"}'
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    http.post("/v2/metered/blobs/uploads/", params={"digest": digest}, content=config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    put = http.put(
        "/v2/metered/manifests/latest", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status_code == 201
    return manifest


def test_metrics_add_up_over_workers_and_move_with_requests() -> None:
    port = free_port()
    with WharfServer(workers=2, config=_debug_config(port)) as server:
        with httpx.Client(base_url=server.url) as http:
            manifest = _push(http)
        # Fresh connections: the requests spread over both workers.
        for _ in range(20):
            assert httpx.get(f"{server.url}/v2/metered/manifests/latest").status_code == 200
        labels = '{method="GET",route="manifest",status="200"}'
        requests = f"wharf_http_requests_total{labels}"
        values = _wait_for(port, requests, 20)
        assert values[requests] == 20
        assert values[f"wharf_http_response_bytes_total{labels}"] == 20 * len(manifest)
        assert values[f"wharf_http_request_duration_seconds_count{labels}"] == 20
        bucket = '{method="GET",route="manifest",status="200",le="+Inf"}'
        assert values[f"wharf_http_request_duration_seconds_bucket{bucket}"] == 20
        put = '{method="PUT",route="manifest",status="201"}'
        assert values[f"wharf_http_request_bytes_total{put}"] == len(manifest)
        storage = '{driver="filesystem",operation="get_content"}'
        assert values[f"wharf_storage_operation_duration_seconds_count{storage}"] > 0
        # Repeated pulls are answered whole from the cache; the first ones read the tag.
        assert values['wharf_cache_hits_total{cache="manifest_responses"}'] > 0
        assert values['wharf_cache_misses_total{cache="tags"}'] > 0
        assert values["wharf_uploads_in_progress"] == 0
        assert values['wharf_health_check_up{check="storagedriver_filesystem"}'] == 1
        for _ in range(5):
            httpx.get(f"{server.url}/v2/metered/manifests/latest")
        assert _wait_for(port, requests, 25)[requests] == 25
    with pytest.raises(httpx.ConnectError):  # the debug listener stops with the server
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_health_answers_503_while_a_check_fails(tmp_path: Path) -> None:
    port = free_port()
    closed = f"127.0.0.1:{free_port()}"
    marker = tmp_path / "out-of-rotation"
    health = {
        "tcp": [{"addr": closed, "timeout": "1s", "interval": "1s"}],
        "file": [{"file": str(marker), "interval": "100ms"}],
    }
    with WharfServer(config=_debug_config(port, health=health)):
        url = f"http://127.0.0.1:{port}/debug/health"
        response = httpx.get(url)
        for _ in range(50):
            if response.status_code == 503:
                break
            time.sleep(0.1)
            response = httpx.get(url)
        assert response.status_code == 503
        failing = response.json()
        assert list(failing) == [closed]
        assert failing[closed].startswith(f"connection to {closed} failed")
        marker.touch()
        time.sleep(0.5)
        assert set(httpx.get(url).json()) == {closed, str(marker)}
        assert httpx.get(f"http://127.0.0.1:{port}/nothing").status_code == 404


def test_healthy_is_200_and_an_empty_object() -> None:
    port = free_port()
    with WharfServer(config=_debug_config(port)):
        response = httpx.get(f"http://127.0.0.1:{port}/debug/health")
        assert (response.status_code, response.json()) == (200, {})


def test_a_debug_address_in_use_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "version": "0.1",
                    "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
                    "http": {
                        "addr": f"127.0.0.1:{free_port()}",
                        "secret": "s",
                        "debug": {"addr": f"127.0.0.1:{port}"},
                    },
                }
            )
        )
        done = subprocess.run(
            [sys.executable, "-m", "wharf", "serve", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if " error " in line]
    assert len(errors) == 1
    assert f"cannot listen on 127.0.0.1:{port} (http.debug.addr)" in errors[0]
