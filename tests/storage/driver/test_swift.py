"""The Swift driver: the contract on OpenStack Swift (native API, tempauth), and what only
Swift has."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.storage.driver.contract import DriverContract
from tests.support.swift import SwiftNative
from wharf.config.model import StorageConfig
from wharf.storage.driver import StorageDriver
from wharf.storage.driver.factory import create_driver

pytestmark = pytest.mark.swift


@pytest.fixture
async def driver(swift_native: SwiftNative) -> AsyncIterator[StorageDriver]:
    # A fresh container per test. Segments of the default 20 MiB: Swift serves the segments of
    # a DLO past its tenth at one a second (dlo's rate_limit_after_segment).
    parameters = swift_native.fresh_parameters()
    driver = create_driver(StorageConfig("swift", parameters))
    yield driver
    await driver.close()


class TestSwiftContract(DriverContract):
    mtime_resolution = 0.05  # X-Timestamp has microseconds
