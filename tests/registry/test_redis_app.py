"""The app with ``redis``, in process, when Redis goes away: reads go to storage (nothing stale
is served), blob writes succeed, a tag delete whose change cannot be announced answers 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import push_blob, push_image
from tests.support.redis_server import RedisServer, needs_redis
from wharf.api.app import WharfApp, create_app
from wharf.coherence.redis_tokens import RedisGenerations
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.config.operations import RedisConfig

pytestmark = needs_redis


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[WharfApp, RedisServer]]:
    with RedisServer() as server:
        config = Config(
            storage=StorageConfig(
                parameters={"rootdirectory": str(tmp_path / "data")}, delete_enabled=True
            ),
            http=HTTPConfig(secret="s"),
            redis=RedisConfig(server.addr),
        )
        app = create_app(config)
        app.start_background()
        assert isinstance(app.generations, RedisGenerations)
        assert await app.generations.wait_subscribed()
        try:
            yield app, server
        finally:
            await app.aclose()


async def test_redis_away(running: tuple[WharfApp, RedisServer]) -> None:
    app, server = running
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as client:
        digest, _ = await push_image(client, "app", "v1")
        for _ in range(3):
            assert (await client.get("/v2/app/manifests/v1")).status_code == 200
        answers = app.context.responses.manifests
        assert answers is not None
        hits = answers.hits
        assert hits >= 2  # cached while Redis is there
        server.stop()
        generations = app.generations
        assert isinstance(generations, RedisGenerations)
        for _ in range(200):
            if generations.token("app") != generations.token("app"):
                break
            await asyncio.sleep(0.02)
        assert (await client.get("/v2/app/manifests/v1")).status_code == 200
        assert answers.hits == hits  # from storage now
        await push_blob(client, "app", b"a blob while Redis is away")
        deleted = await client.delete("/v2/app/manifests/v1")
        assert deleted.status_code == 503
        assert deleted.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert deleted.headers["X-Request-Id"]
        assert (await client.get("/v2/app/manifests/v1")).status_code == 404  # it was stored
        assert (await client.get(f"/v2/app/manifests/{digest}")).status_code == 200
