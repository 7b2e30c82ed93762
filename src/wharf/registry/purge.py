"""Upload purging: remove upload sessions older than ``maintenance.uploadpurging.age``.

While serving (``run_purges``), one process of all those sharing the storage purges per
interval: the lease of ``/wharf/uploads/purge``, which also records when the last purge
ended, decides who does, and the others see that it is not due. As Distribution does, the
first look comes after a random delay of up to an hour (up to the interval when that is
shorter), so that processes and instances started together do not walk at once. The walk of
every repository that a purge makes also reconciles the catalog index with what it finds.
A purge is a task of the process: stopping the process cancels it between two storage calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wharf.config.model import UploadPurgingConfig
from wharf.errors import RegistryError
from wharf.reference import RepositoryName
from wharf.registry.catalog import Catalog
from wharf.registry.upload_session import parse_started_at
from wharf.storage import paths
from wharf.storage.driver import LeaseBusy, PathNotFound, StorageDriver

__all__ = ["FIRST_DELAY_MAX", "PurgeResult", "purge_if_due", "purge_uploads", "run_purges"]

#: The longest wait before the first purge of a process, in seconds.
FIRST_DELAY_MAX = 3600.0

log = logging.getLogger("wharf.purge")


@dataclass(frozen=True, slots=True)
class PurgeResult:
    purged: list[str]
    kept: int


async def purge_uploads(
    driver: StorageDriver,
    catalog: Catalog,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    reconcile: bool = False,
) -> PurgeResult:
    """Delete every upload session started before now - ``older_than``; ``reconcile``:
    compare the catalog index with the repositories walked, once it is built."""
    cutoff = datetime.now(UTC) - older_than
    purged: list[str] = []
    kept = 0
    log.info("upload purge: walking the repositories")
    repositories = await catalog.walk()
    if reconcile and await catalog.index.built():
        await catalog.index.reconcile(repositories)
    for repository in repositories:
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


async def run_purges(driver: StorageDriver, catalog: Catalog, config: UploadPurgingConfig) -> None:
    """Purge every ``config.interval``, one process at a time across all sharing the
    storage, the first look after a random delay."""
    interval = max(config.interval.total_seconds(), 1.0)
    await asyncio.sleep(random.uniform(0, min(FIRST_DELAY_MAX, interval)))
    while True:
        try:
            await purge_if_due(driver, catalog, config)
        except LeaseBusy:
            pass  # another process purges
        except Exception:
            log.exception("upload purge failed")
        await asyncio.sleep(interval * random.uniform(0.5, 1.0))


async def purge_if_due(
    driver: StorageDriver, catalog: Catalog, config: UploadPurgingConfig
) -> PurgeResult | None:
    """A purge when the last one ended ``config.interval`` ago (None otherwise); LeaseBusy
    while another process purges."""
    marker = paths.upload_purge_marker()
    interval = config.interval
    if not await _due(driver, marker, interval):
        return None
    try:
        lease = await driver.lease(marker)
    except PathNotFound:
        await driver.put_content(marker, _EPOCH)  # a lease is taken on a file
        lease = await driver.lease(marker)
    async with lease:
        if not await _due(driver, marker, interval):  # purged meanwhile
            return None
        result = await purge_uploads(
            driver, catalog, config.age, dry_run=config.dry_run, reconcile=True
        )
        lease.check()
        await driver.put_content(marker, datetime.now(UTC).strftime(_TIME).encode())
        return result


_TIME = "%Y-%m-%dT%H:%M:%SZ"
_EPOCH = b"1970-01-01T00:00:00Z"


async def _due(driver: StorageDriver, marker: str, interval: timedelta) -> bool:
    try:
        text = (await driver.get_content(marker)).decode().strip()
        last = datetime.strptime(text, _TIME).replace(tzinfo=UTC)
    except (PathNotFound, ValueError):
        return True
    # A little early: processes look at random moments within an interval.
    return datetime.now(UTC) - last >= interval * 0.9
