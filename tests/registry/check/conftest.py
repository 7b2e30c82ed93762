"""An in-process wharf on each embedded driver, and the check run over its storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.registry.check.support import Damage
from tests.registry.gc.support import Pusher
from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.registry.check import CheckReport, check_storage

Check = Callable[..., Awaitable[CheckReport]]


@pytest.fixture(params=["inmemory", "filesystem"])
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage(driver_name: str, tmp_path: Path) -> StorageConfig:
    parameters = {"rootdirectory": str(tmp_path / "data")} if driver_name == "filesystem" else {}
    return StorageConfig(driver=driver_name, parameters=parameters, delete_enabled=True)


@pytest.fixture
async def app(storage: StorageConfig) -> AsyncIterator[WharfApp]:
    application = create_app(Config(storage=storage, http=HTTPConfig(secret="test-secret")))
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
def damage(app: WharfApp) -> Damage:
    return Damage(app.registry.driver)


@pytest.fixture
def check(app: WharfApp) -> Check:
    """Check the app's storage without pausing between a finding's two looks."""

    async def run(**options: Any) -> CheckReport:
        options.setdefault("recheck_delay", 0)
        return await check_storage(app.registry.driver, **options)

    return run
