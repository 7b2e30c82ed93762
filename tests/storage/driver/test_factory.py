"""create_driver: known drivers wrapped once, unknown names and parameters refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wharf.config.model import StorageConfig
from wharf.config.sources import ConfigError
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.factory import create_driver, validate_storage
from wharf.storage.driver.filesystem import DEFAULT_ROOT_DIRECTORY, FilesystemDriver
from wharf.storage.driver.inmemory import InMemoryDriver


async def test_inmemory() -> None:
    driver = create_driver(StorageConfig("inmemory", {}))
    assert isinstance(driver, CheckedDriver)
    assert isinstance(driver.inner, InMemoryDriver)
    assert driver.name == "inmemory"


async def test_filesystem(tmp_path: Path) -> None:
    config = StorageConfig("filesystem", {"rootdirectory": str(tmp_path), "maxthreads": "25"})
    driver = create_driver(config)
    assert isinstance(driver, CheckedDriver)
    assert isinstance(driver.inner, FilesystemDriver)
    assert (driver.name, driver.inner.root) == ("filesystem", str(tmp_path))
    await driver.close()


@pytest.mark.parametrize(("value", "expected"), [(False, False), ("false", False), ("True", True)])
async def test_filesystem_direct_writes(tmp_path: Path, value: object, expected: bool) -> None:
    config = StorageConfig("filesystem", {"rootdirectory": str(tmp_path), "directwrites": value})
    driver = create_driver(config)
    assert isinstance(driver, CheckedDriver)
    assert isinstance(driver.inner, FilesystemDriver)
    assert driver.inner.direct_writes is expected
    await driver.close()


async def test_filesystem_default_root() -> None:
    driver = create_driver(StorageConfig("filesystem", {}))
    assert isinstance(driver, CheckedDriver)
    assert isinstance(driver.inner, FilesystemDriver)
    assert driver.inner.root == DEFAULT_ROOT_DIRECTORY
    await driver.close()


def test_unknown_driver() -> None:
    with pytest.raises(ValueError, match="unknown storage driver 'ftp'"):
        create_driver(StorageConfig("ftp", {}))
    with pytest.raises(ConfigError, match=r"^storage\.ftp: unknown storage driver \(known: "):
        validate_storage(StorageConfig("ftp", {}))


@pytest.mark.parametrize(
    ("driver", "parameters", "message"),
    [
        ("inmemory", {"rootdirectory": "/x"}, "unknown parameter 'rootdirectory'.*inmemory"),
        ("filesystem", {"root": "/x"}, "unknown parameter 'root'.*filesystem"),
        ("filesystem", {"rootdirectory": 5}, "rootdirectory must be a non-empty string"),
        ("filesystem", {"rootdirectory": ""}, "rootdirectory must be a non-empty string"),
        ("filesystem", {"maxthreads": 0}, "maxthreads must be a positive integer"),
        ("filesystem", {"maxthreads": True}, "maxthreads must be a positive integer"),
        ("filesystem", {"maxthreads": "many"}, "maxthreads must be a positive integer"),
        ("filesystem", {"directwrites": "maybe"}, "directwrites must be true or false"),
    ],
)
def test_bad_parameters(driver: str, parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        create_driver(StorageConfig(driver, parameters))
    assert "\n" not in str(exc.value)
    # The same, found before any driver is built (in the parent process of wharf serve).
    with pytest.raises(ConfigError, match=message):
        validate_storage(StorageConfig(driver, parameters))


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "bucket must name a bucket"),
        ({"bucket": "b"}, "region is required"),
        ({"bucket": "b", "region": "us-east-1", "rootdirectroy": "/x"}, "unknown parameter"),
    ],
)
def test_s3_parameters_are_validated_without_a_client(
    parameters: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_storage(StorageConfig("s3", parameters))


def test_good_parameters_validate(tmp_path: Path) -> None:
    validate_storage(StorageConfig("filesystem", {"rootdirectory": str(tmp_path / "new")}))
    validate_storage(StorageConfig("inmemory", {}))
    validate_storage(StorageConfig("s3", {"bucket": "b", "region": "eu-west-1"}))
    assert not (tmp_path / "new").exists()  # nothing is created by a validation
