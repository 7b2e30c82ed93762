"""Fixtures for every test directory: the S3 servers and Azurite (session-scoped, started on
first use), and the removal of what the processes under test leave in this machine's shared
memory."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.azurite import azurite_server
from tests.support.gcs import gcs_server
from tests.support.s3servers import moto_server, s3_server, swift_server
from tests.support.swift import swift_native
from wharf.storage.driver.local_leases import machine_directory
from wharf.testing.plugin import registry, registry_factory, registry_server

__all__ = [
    "azurite_server",
    "gcs_server",
    "machine_leftovers",
    "moto_server",
    "registry",
    "registry_factory",
    "registry_server",
    "s3_server",
    "swift_native",
    "swift_server",
]


@pytest.fixture(scope="session", autouse=True)
def machine_leftovers() -> Iterator[None]:
    """Change tokens, lock directories and lease files are named after a storage and kept for
    as long as the machine runs, as a registry needs them; each test's storage is new, so
    the session removes the ones it made."""
    directory = Path(machine_directory())
    before = {path.name for path in directory.glob("wharf-*")}
    yield
    for path in directory.glob("wharf-*"):
        if path.name not in before:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
