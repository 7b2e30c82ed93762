"""Upload purging: remove upload sessions older than ``maintenance.uploadpurging.age``."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wharf.errors import RegistryError
from wharf.reference import RepositoryName
from wharf.registry.catalog import Catalog
from wharf.registry.uploads import parse_started_at
from wharf.storage import paths
from wharf.storage.driver import LeaseBusy, PathNotFound, StorageDriver

__all__ = ["PurgeResult", "purge_uploads"]

log = logging.getLogger("wharf.purge")


@dataclass(frozen=True, slots=True)
class PurgeResult:
    purged: list[str]
    kept: int


async def purge_uploads(
    driver: StorageDriver, catalog: Catalog, older_than: timedelta, *, dry_run: bool = False
) -> PurgeResult:
    """Delete every upload session started before now - ``older_than``."""
    cutoff = datetime.now(UTC) - older_than
    purged: list[str] = []
    kept = 0
    for repository in await catalog.walk():
        try:
            name = RepositoryName(repository)
            sessions = await driver.list(paths.uploads_dir(name))
        except (PathNotFound, RegistryError):
            continue
        for session in sessions:
            upload_id = session.rpartition("/")[2]
            started = await _started_at(driver, name, upload_id)
            if started is not None and started >= cutoff:
                kept += 1
                continue
            if dry_run or await _remove(driver, name, upload_id):
                purged.append(f"{repository}/{upload_id}")
            else:
                kept += 1
    # Uncommitted data a driver keeps outside the session directories (S3 multipart
    # uploads) is purged by the same age.
    for path in await driver.purge_uncommitted(cutoff, dry_run=dry_run):
        purged.append(path)
    if purged:
        log.info(
            "upload purge: %d removed%s, %d kept",
            len(purged),
            " (dry run)" if dry_run else "",
            kept,
        )
    return PurgeResult(purged, kept)


async def _remove(driver: StorageDriver, name: RepositoryName, upload_id: str) -> bool:
    """Delete a session unless a request is writing to it; whether it was deleted. Under its
    lease, as every writer of a session, and ``startedat`` first, as the uploads service."""
    started_at = paths.upload_started_at(name, upload_id)
    try:
        lease = await driver.lease(started_at)
    except LeaseBusy:
        return False
    except PathNotFound:
        lease = None  # no request can use a session without startedat
    try:
        with contextlib.suppress(PathNotFound):
            await driver.delete(started_at)
        with contextlib.suppress(PathNotFound):
            await driver.delete(paths.upload_dir(name, upload_id))
    finally:
        if lease is not None:
            await lease.release(deleted=True)
    return True


async def _started_at(
    driver: StorageDriver, name: RepositoryName, upload_id: str
) -> datetime | None:
    """When the session started; without ``startedat`` (a session no request can use), the
    time of its data, so that a session being written is not taken away."""
    with contextlib.suppress(PathNotFound):
        started = parse_started_at(
            await driver.get_content(paths.upload_started_at(name, upload_id))
        )
        if started is not None:
            return started
    with contextlib.suppress(PathNotFound):
        return (await driver.stat(paths.upload_data(name, upload_id))).modified
    return None
