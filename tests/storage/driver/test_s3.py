"""The S3 driver: the contract on moto and on Swift, and what only S3 has."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.storage.driver.contract import DriverContract
from tests.support.s3servers import S3Server
from wharf.config.model import StorageConfig
from wharf.storage.driver import StorageDriver
from wharf.storage.driver.factory import create_driver


@pytest.fixture
async def driver(s3_server: S3Server) -> AsyncIterator[StorageDriver]:
    # A fresh bucket per test; moto with the bucket's root, Swift below a root directory.
    root = "" if s3_server.kind == "moto" else "/wharf/root"
    parameters = s3_server.parameters(s3_server.create_bucket(), rootdirectory=root)
    driver = create_driver(StorageConfig("s3", parameters))
    yield driver
    await driver.close()


@pytest.mark.s3
class TestS3Contract(DriverContract):
    mtime_resolution = 1.1  # Last-Modified has whole seconds
