"""Around each request, in process: X-Request-Id, the access log line, the request id on every
line logged meanwhile, and the metrics that move with requests."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import push_image
from wharf.api.app import WharfApp, create_app
from wharf.api.context import AppContext
from wharf.api.http import Request, Response
from wharf.config import Config, HTTPConfig, LogConfig, StorageConfig
from wharf.logs import JSONFormatter


@pytest.fixture
def logged() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Everything the JSON formatter writes while the test runs, parsed, when asked."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter({"service": "registry"}))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _make(tmp_path: Path, **log: Any) -> WharfApp:
    config = Config(
        log=LogConfig(formatter="json", **log),
        storage=StorageConfig(parameters={"rootdirectory": str(tmp_path / "data")}),
        http=HTTPConfig(secret="s"),
    )
    app = create_app(config)

    async def noisy(ctx: AppContext, request: Request) -> Response:
        logging.getLogger("wharf.test").warning("inside the request")
        return Response(200, b"ok")

    app.extra_routes["/noisy"] = noisy
    return app


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[WharfApp]:
    app = _make(tmp_path)
    yield app
    await app.aclose()


@pytest.fixture
async def client(app: WharfApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as http:
        yield http


async def test_every_response_has_a_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/v2/")
    second = await client.get("/v2/nothing/manifests/latest")
    ids = {first.headers["X-Request-Id"], second.headers["X-Request-Id"]}
    assert len(ids) == 2
    assert all(ids)


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("trace-0af7651916cd43dd8448eb211c80319c", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("two words", False),
        ("<script>", False),
        ("", False),
    ],
)
async def test_a_sane_incoming_request_id_is_kept(
    client: httpx.AsyncClient, incoming: str, kept: bool
) -> None:
    response = await client.get("/v2/", headers={"X-Request-Id": incoming})
    assert (response.headers["X-Request-Id"] == incoming) is kept


async def test_access_log_and_request_id_on_every_line(
    client: httpx.AsyncClient, logged: Callable[[], list[dict[str, Any]]]
) -> None:
    response = await client.get("/noisy", headers={"X-Request-Id": "req-42"})
    assert response.status_code == 200
    await client.get("/v2/", headers={"X-Request-Id": "req-43"})
    logging.getLogger("wharf.test").warning("outside any request")
    written = logged()
    inside = [line for line in written if line["msg"] == "inside the request"]
    assert inside[0]["request_id"] == "req-42"
    assert inside[0]["service"] == "registry"
    access = [line for line in written if line["logger"] == "wharf.access"]
    assert [line["request_id"] for line in access] == ["req-42", "req-43"]
    assert access[0]["msg"] == "GET /noisy 200"
    assert access[0]["level"] == "info"
    assert (access[0]["method"], access[0]["path"], access[0]["status"]) == ("GET", "/noisy", 200)
    assert (access[0]["bytes_in"], access[0]["bytes_out"]) == (0, 2)
    assert access[0]["duration_ms"] >= 0
    outside = [line for line in written if line["msg"] == "outside any request"]
    assert "request_id" not in outside[0]


async def test_the_access_log_can_be_turned_off(
    tmp_path: Path, logged: Callable[[], list[dict[str, Any]]]
) -> None:
    app = _make(tmp_path, access_log=False)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as client:
            await client.get("/v2/")
    finally:
        await app.aclose()
    assert not [line for line in logged() if line["logger"] == "wharf.access"]


async def test_metrics_move_with_requests(app: WharfApp, client: httpx.AsyncClient) -> None:
    metrics = app.operations.metrics
    _, manifest = await push_image(client, "app", "v1")
    for _ in range(3):
        assert (await client.get("/v2/app/manifests/v1")).status_code == 200
    assert (await client.get("/v2/app/manifests/nope")).status_code == 404
    get = metrics.requests[("manifest", "GET", 200)]
    assert get[0] == 3
    assert get[3] == 3 * len(manifest)
    assert metrics.requests[("manifest", "GET", 404)][0] == 1
    assert metrics.requests[("manifest", "PUT", 201)][2] == len(manifest)  # bytes in
    assert metrics.requests[("upload_start", "POST", 201)][0] == 3
    assert metrics.storage[("filesystem", "put_content")][0] > 0
    samples = {
        (name, tuple(labels.items())): value
        for name, labels, value in metrics.snapshot()["samples"]
    }
    assert samples[("wharf_cache_hits_total", (("cache", "manifest_responses"),))] >= 2
    assert samples[("wharf_cache_misses_total", (("cache", "tags"),))] >= 1
    assert metrics.in_flight == 0


async def test_uploads_in_progress(app: WharfApp, client: httpx.AsyncClient) -> None:
    metrics = app.operations.metrics
    location = (await client.post("/v2/app/blobs/uploads/")).headers["Location"]
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        await release.wait()
        yield b"y" * 1000

    patch = asyncio.get_running_loop().create_task(client.patch(location, content=body()))
    for _ in range(200):
        if metrics.uploads_in_progress:
            break
        await asyncio.sleep(0.01)
    assert metrics.uploads_in_progress == 1
    assert metrics.in_flight == 1
    release.set()
    assert (await patch).status_code == 202
    assert metrics.uploads_in_progress == 0
    assert metrics.requests[("upload", "PATCH", 202)][2] == 2000


@pytest.mark.parametrize(
    ("path", "cached"),
    [
        ("/v2/app/manifests/latest", True),
        ("/v2/app/tags/list", True),
        ("/v2/_catalog", True),
        ("/v2/app/referrers/sha256:0", True),
        ("/v2/x/blobs/y/manifests/latest", True),  # a repository named x/blobs/y
        ("/v2/x/blobs/uploads/manifests/latest", True),
        ("/v2/app/blobs/tags/list", True),
        ("/v2/app/blobs/sha256:0", False),
        ("/v2/app/blobs/uploads/", False),
        # A session is continued from what the process remembers of it.
        ("/v2/app/blobs/uploads/0b8f3c0e-5b7c-4f4e-9d1a-2f0c1e2d3a4b", True),
    ],
)
def test_only_requests_that_read_caches_wait_for_the_barrier(path: str, cached: bool) -> None:
    from wharf.observability.middleware import _reads_no_cache

    assert _reads_no_cache(path) is not cached
