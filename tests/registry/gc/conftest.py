"""An in-process wharf over filesystem storage, and a collector to run against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.registry.gc.redis_server import redis_server, redis_server_binary
from tests.registry.gc.support import Pusher, Tree
from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.config.model import GcConfig
from wharf.config.operations import RedisConfig
from wharf.registry.gc import GcOptions, GcResult, collect, create_coordination

Collect = Callable[..., Awaitable[GcResult]]


def make_config(root: Path, lockdir: Path, redis: str | None = None) -> Config:
    """Filesystem storage at ``root``; coordination in ``lockdir``, or on Redis at ``redis``."""
    return Config(
        storage=StorageConfig(
            driver="filesystem",
            parameters={"rootdirectory": str(root)},
            delete_enabled=True,
            gc=GcConfig(lockdir=str(lockdir)),
        ),
        http=HTTPConfig(secret="test-secret"),
        redis=RedisConfig(redis) if redis else None,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "data")


@pytest.fixture
async def app(tmp_path: Path, tree: Tree) -> AsyncIterator[WharfApp]:
    application = create_app(make_config(tree.root, tmp_path / "gc"))
    yield application
    await application.aclose()


@pytest.fixture
async def client(app: WharfApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as http:
        yield http


@pytest.fixture
def pusher(client: httpx.AsyncClient) -> Pusher:
    return Pusher(client)


@pytest.fixture
def gc(app: WharfApp) -> Collect:
    """Collect once over the app's storage, with the app's coordination and caches."""

    async def run(**options: Any) -> GcResult:
        coordination = create_coordination(app.config)
        try:
            return await collect(
                app.registry.driver,
                coordination,
                GcOptions(**options),
                generations=app.generations,
            )
        finally:
            await coordination.close()

    return run


@pytest.fixture
def redis_addr() -> Iterator[str]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    with redis_server() as addr:
        yield addr
