"""Helpers and settings shared by the storage driver contract modules."""

from __future__ import annotations

import os
import random
import string

import pytest

from wharf.storage.driver import DriverError, StorageDriver

__all__ = [
    "ContractSettings",
    "MiB",
    "assert_error",
    "random_bytes",
    "random_name",
    "random_path",
    "read_all",
]

MiB = 1 << 20
_NAME_CHARS = string.ascii_lowercase + string.digits


def random_bytes(size: int) -> bytes:
    return random.randbytes(size)


def random_name(length: int) -> str:
    """Distribution's randomFilename: name characters with an occasional ``.``, ``_``, ``-``."""
    chars, separator = [], True
    for i in range(length):
        if not separator and i < length - 1 and random.randrange(4) == 0:
            chars.append(random.choice("._-"))
            separator = True
        else:
            chars.append(random.choice(_NAME_CHARS))
            separator = False
    return "".join(chars)


def random_path(length: int = 32) -> str:
    """Distribution's randomPath: a path of several random components, ``length`` long."""
    path = "/"
    while len(path) < length:
        path += random_name(random.randint(1, length - len(path)))
        remaining = length - len(path)
        if remaining == 1:
            path += random_name(1)
        elif remaining > 1:
            path += "/"
    return path


async def read_all(driver: StorageDriver, path: str, offset: int = 0, chunk: int = MiB) -> bytes:
    reader = await driver.reader(path, offset)
    try:
        return b"".join([part async for part in reader.chunks(chunk)])
    finally:
        await reader.close()


def assert_error(
    exc: pytest.ExceptionInfo[DriverError], driver: StorageDriver, path: str | None = None
) -> None:
    assert exc.value.driver == driver.name
    assert driver.name in str(exc.value)
    if path is not None:
        assert exc.value.path == path


class ContractSettings:
    """Knobs a driver's test class may override for slow or coarse backends."""

    #: Bytes of the large stream test.
    large_size: int = int(os.environ.get("WHARF_TEST_LARGE_SIZE", 64 * MiB))
    #: Seconds between two writes whose modification times must differ.
    mtime_resolution: float = 0.05
    #: Files in the "many files" list and delete tests (Distribution: 1200).
    many_files: int = 200
    #: Concurrent writers in the concurrent streams test.
    concurrent_streams: int = 8
    #: Bytes per writer in the ``write_in_place`` tests: more than an S3 part of the
    #: default 10 MiB ``chunksize``, so that the writers' multipart uploads overlap.
    in_place_size: int = 12 * MiB
    #: Whether ``walk`` gives each file written by ``put_content`` an ``etag``, the hex MD5 of
    #: its content (what garbage collection uses to resolve tags without reading them).
    walk_etags: bool = False
    #: Whether ``listing_version`` tells a directory's version (else it is always None).
    listing_versions: bool = False
