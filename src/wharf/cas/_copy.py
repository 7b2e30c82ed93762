"""Copies that stay inside one store: S3's CopyObject (UploadPartCopy for large objects)
within one bucket, the kernel's ``copy_file_range`` on a local filesystem, and a copy in
memory within one in-memory store. None of these is in the driver contract, which has no
copy (a move would take the source away), so they are looked for here, by driver type."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys

from wharf.storage.driver import PathNotFound, StorageDriver
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.filesystem import FilesystemDriver
from wharf.storage.driver.inmemory import InMemoryDriver

__all__ = ["server_copy"]


def _bare(driver: StorageDriver) -> StorageDriver:
    while isinstance(driver, CheckedDriver):
        driver = driver.inner
    return driver


async def server_copy(
    source_driver: StorageDriver, source: str, target_driver: StorageDriver, target: str
) -> bool:
    """Copy ``source`` to ``target`` inside their common store; False when they have none."""
    a, b = _bare(source_driver), _bare(target_driver)
    if isinstance(a, FilesystemDriver) and isinstance(b, FilesystemDriver):
        await asyncio.to_thread(_copy_file, a.full_path(source), b.full_path(target))
        return True
    if isinstance(a, InMemoryDriver) and a is b:
        # One store: the bytes are in this process already.
        await target_driver.put_content(target, await source_driver.get_content(source))
        return True
    s3 = sys.modules.get("wharf.storage.driver.s3.driver")  # loaded when an S3 store is used
    if s3 is not None and isinstance(a, s3.S3Driver) and isinstance(b, s3.S3Driver):
        pa, pb = a.params, b.params
        same = (pa.regionendpoint, pa.bucket, pa.accesskey) == (
            pb.regionendpoint,
            pb.bucket,
            pb.accesskey,
        )
        if same:
            info = await a.bucket.head(a.layout.key(source))
            await b.bucket.copy(info, b.layout.key(target))
            return True
    return False


def _copy_file(source: str, target: str) -> None:
    """A new file (its own modification time), in place at once: copied beside, renamed."""
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{secrets.token_hex(8)}.copying")
    try:
        shutil.copyfile(source, temporary)  # copy_file_range/sendfile: no bytes through here
        os.replace(temporary, target)
    except FileNotFoundError as exc:
        if exc.filename == source:
            raise PathNotFound(source) from None
        raise
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
