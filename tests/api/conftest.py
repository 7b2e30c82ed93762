"""In-process API tests: the ASGI app driven through httpx, on each driver (s3 on two servers,
azure on Azurite)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.azurite import AzuriteServer
from tests.support.gcs import GCSServer
from tests.support.s3servers import S3Server
from tests.support.swift import SwiftNative
from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig

AppFactory = Callable[..., WharfApp]


# The whole suite runs on both S3 servers, not a subset on Swift: on 2 cores its 69 tests per
# driver take about 30 s on moto and 70 s on Swift, next to ~15 min for the rest of the suite.
@pytest.fixture(
    params=[
        "inmemory",
        "filesystem",
        pytest.param("s3-moto", marks=pytest.mark.s3),
        pytest.param("s3-swift", marks=pytest.mark.s3),
        pytest.param("azure", marks=pytest.mark.azure),
        pytest.param("swift", marks=pytest.mark.swift),
        pytest.param("gcs", marks=pytest.mark.gcs),
    ]
)
def driver_name(request: pytest.FixtureRequest) -> str:
    """The storage: an embedded driver, or s3 on one of the test S3 servers."""
    return str(request.param)


@pytest.fixture
def storage_parameters(
    driver_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """The driver's parameters: fresh storage per test, shared by the apps it makes."""
    if driver_name == "filesystem":
        return {"rootdirectory": str(tmp_path / "data")}
    if driver_name.startswith("s3-"):
        server: S3Server = request.getfixturevalue(driver_name.replace("s3-", "") + "_server")
        return server.fresh_parameters()
    if driver_name == "swift":
        swift: SwiftNative = request.getfixturevalue("swift_native")
        return swift.fresh_parameters()
    if driver_name == "azure":
        azurite: AzuriteServer = request.getfixturevalue("azurite_server")
        return azurite.fresh_parameters()
    if driver_name == "gcs":
        gcs: GCSServer = request.getfixturevalue("gcs_server")
        return gcs.fresh_parameters()
    return {}


@pytest.fixture
async def make_app(
    driver_name: str, storage_parameters: dict[str, Any]
) -> AsyncIterator[AppFactory]:
    apps: list[WharfApp] = []
    driver = driver_name.split("-")[0]

    def factory(**storage: Any) -> WharfApp:
        # Blob GETs on s3, azure and gcs answer with the bytes, not a redirect the ASGI client
        # cannot follow.
        settings: dict[str, Any] = {
            "delete_enabled": True,
            "redirect_disabled": driver in ("s3", "azure", "swift", "gcs"),
            **storage,
        }
        config = Config(
            storage=StorageConfig(driver=driver, parameters=storage_parameters, **settings),
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
