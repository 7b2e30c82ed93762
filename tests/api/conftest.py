"""In-process API tests: the ASGI app driven through httpx, on each embedded driver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig

AppFactory = Callable[..., WharfApp]


@pytest.fixture(params=["inmemory", "filesystem"])
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_app(driver_name: str, tmp_path: Path) -> AsyncIterator[AppFactory]:
    apps: list[WharfApp] = []

    def factory(**storage: Any) -> WharfApp:
        parameters: dict[str, Any] = (
            {"rootdirectory": str(tmp_path / "data")} if driver_name == "filesystem" else {}
        )
        settings: dict[str, Any] = {"delete_enabled": True, **storage}
        config = Config(
            storage=StorageConfig(driver=driver_name, parameters=parameters, **settings),
            http=HTTPConfig(secret="test-secret"),
        )
        app = create_app(config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


@pytest.fixture
def app(make_app: AppFactory) -> WharfApp:
    return make_app()


@pytest.fixture
async def client(app: WharfApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as http:
        yield http
