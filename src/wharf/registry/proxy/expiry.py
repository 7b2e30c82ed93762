"""Expiry of what the pull-through cache holds: what is not pulled for a mirror's ``ttl`` goes.

Each manifest and blob fetched into a mirrored repository gets a record in storage,
``_mirror/<alg>/<hex>/pulled``, holding when it was last pulled: written when it is fetched,
and again on a pull once the record is older than a tenth of the TTL (so a cache hit rarely
writes, and never waits for the write). Records live in storage, not in a process's memory,
so every worker and instance sees the same schedule, and a restart forgets nothing.

A sweep (``sweep``) removes what expired: a manifest's revision link with the tags pointing at
it, then the layer links of expired blobs that no manifest still cached in the repository
references. Blob bytes are left to garbage collection, online or not, which removes them once
nothing references them; so expiry never removes a blob a cached manifest needs, and a
collection never races an expiry for the same bytes. ``SweepSchedule`` runs one sweep at a
time across every process sharing the storage (a lease on ``/wharf/mirrors/sweep``, which also
records when the last sweep ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from wharf.errors import RegistryError
from wharf.reference import Digest, RepositoryName
from wharf.registry.manifest_parse import parse_manifest
from wharf.storage import paths
from wharf.storage.driver import LeaseBusy, PathNotFound, StorageDriver

if TYPE_CHECKING:
    from wharf.registry.namespace import Registry, Repository

__all__ = [
    "Expiry",
    "SweepResult",
    "run_sweeps",
    "sweep_if_due",
    "sweep_interval",
    "sweep_mirrors",
    "sweep_repository",
]

log = logging.getLogger("wharf.proxy")

#: Pulls remembered per process, to write a record at most once per tenth of the TTL.
_REMEMBERED = 200_000


@dataclass(slots=True)
class SweepResult:
    manifests: int = 0
    blobs: int = 0
    kept_blobs: int = 0

    def add(self, other: SweepResult) -> None:
        self.manifests += other.manifests
        self.blobs += other.blobs
        self.kept_blobs += other.kept_blobs


class Expiry:
    """The records of one process. ``ttl_of`` tells a repository's TTL (None: never)."""

    def __init__(
        self, driver: StorageDriver, ttl_of: Callable[[RepositoryName], timedelta | None]
    ) -> None:
        self.driver = driver
        self.ttl_of = ttl_of
        self._written: dict[tuple[str, str], float] = {}
        self._writing: set[asyncio.Task[None]] = set()

    def fetched(self, name: RepositoryName, digest: Digest) -> None:
        self._record(name, digest, force=True)

    def touched(self, name: RepositoryName, digest: Digest) -> None:
        self._record(name, digest, force=False)

    def _record(self, name: RepositoryName, digest: Digest, *, force: bool) -> None:
        ttl = self.ttl_of(name)
        if ttl is None:
            return
        key = (name.value, str(digest))
        now = time.monotonic()
        last = self._written.get(key)
        if not force and last is not None and now - last < ttl.total_seconds() / 10:
            return
        if len(self._written) >= _REMEMBERED:
            self._written.clear()
        self._written[key] = now
        task = asyncio.ensure_future(self._write(name, digest))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _write(self, name: RepositoryName, digest: Digest) -> None:
        moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        try:
            await self.driver.put_content(paths.mirror_record(name, digest), moment)
        except Exception as error:  # a record lost is one expiry postponed, not a failure
            log.warning("cannot record the pull of %s@%s: %s", name.value, digest, error)

    async def settle(self) -> None:
        """Wait for the records being written."""
        if self._writing:
            await asyncio.gather(*list(self._writing), return_exceptions=True)


async def _records(driver: StorageDriver, name: RepositoryName) -> dict[Digest, datetime | None]:
    """Every record of a repository, with the time it holds (None: unreadable)."""
    found: dict[Digest, datetime | None] = {}
    with contextlib.suppress(PathNotFound):
        for algorithm_dir in await driver.list(paths.mirror_records_dir(name)):
            algorithm = algorithm_dir.rpartition("/")[2]
            with contextlib.suppress(PathNotFound):
                for entry in await driver.list(algorithm_dir):
                    try:
                        digest = Digest(algorithm, entry.rpartition("/")[2])
                    except RegistryError:
                        continue
                    try:
                        text = await driver.get_content(paths.mirror_record(name, digest))
                        moment = _parse_time(text)
                    except (PathNotFound, ValueError):
                        moment = None
                    found[digest] = moment
    return found


async def _exists(driver: StorageDriver, path: str) -> bool:
    try:
        await driver.stat(path)
    except PathNotFound:
        return False
    return True


async def _revisions(driver: StorageDriver, name: RepositoryName) -> set[Digest]:
    found: set[Digest] = set()
    with contextlib.suppress(PathNotFound):
        for algorithm_dir in await driver.list(paths.manifest_revisions_dir(name)):
            algorithm = algorithm_dir.rpartition("/")[2]
            with contextlib.suppress(PathNotFound):
                for entry in await driver.list(algorithm_dir):
                    with contextlib.suppress(RegistryError):
                        found.add(Digest(algorithm, entry.rpartition("/")[2]))
    return found


async def sweep_repository(
    repository: Repository, ttl: timedelta, now: datetime | None = None
) -> SweepResult:
    """Remove what expired in one mirrored repository (its local services: no upstream)."""
    driver, name = repository.registry.driver, repository.name
    now = now or datetime.now(UTC)
    result = SweepResult()
    records = await _records(driver, name)
    expired = {d for d, moment in records.items() if moment is None or now - moment > ttl}
    if not expired:
        return result
    revisions = await _revisions(driver, name)
    for digest in sorted(expired & revisions, key=str):
        with contextlib.suppress(RegistryError):
            await repository.manifests.delete(digest)  # with its tags and referrer entry
            result.manifests += 1
    needed: set[Digest] = set()
    for digest in revisions - expired:
        with contextlib.suppress(RegistryError):
            stored = await repository.manifests.get(digest)
            parsed = parse_manifest(stored.body, stored.media_type, digest.algorithm)
            needed.update(d.digest for d in parsed.references())
            if parsed.config is not None:
                needed.add(parsed.config.digest)
    for digest in sorted(expired - revisions, key=str):
        if digest in needed:
            result.kept_blobs += 1
            continue
        with contextlib.suppress(RegistryError):
            await repository.blobs.unlink(digest)
            result.blobs += 1
    for digest in expired:
        if digest in needed:
            continue
        with contextlib.suppress(PathNotFound):
            await driver.delete(paths.mirror_record_dir(name, digest))
    return result


def _parse_time(text: bytes) -> datetime:
    return datetime.fromisoformat(text.decode().strip().replace("Z", "+00:00"))


def sweep_interval(ttls: list[timedelta]) -> timedelta:
    """How often expired content is looked for: a tenth of the shortest TTL, within 1s..1h."""
    shortest = min(ttls)
    return max(timedelta(seconds=1), min(shortest / 10, timedelta(hours=1)))


async def sweep_mirrors(registry: Registry, now: datetime | None = None) -> SweepResult:
    """One sweep of every mirrored repository that has a TTL."""
    result = SweepResult()
    for text in await registry.catalog.walk():
        name = RepositoryName(text)
        ttl = registry.mirror_ttl(name)
        if ttl is not None:
            result.add(await sweep_repository(registry.local_repository(name), ttl, now))
    if result.manifests or result.blobs:
        log.info(
            "expired from the mirrors: %d manifests, %d blob links (%d blobs kept for "
            "manifests still cached)",
            result.manifests,
            result.blobs,
            result.kept_blobs,
        )
    return result


async def _due(driver: StorageDriver, interval: timedelta) -> bool:
    try:
        last = _parse_time(await driver.get_content(paths.mirror_sweep_marker()))
    except (PathNotFound, ValueError):
        return True
    return datetime.now(UTC) - last >= interval


async def run_sweeps(registry: Registry, interval: timedelta) -> None:
    """Sweep every ``interval``, one process at a time across every process sharing the
    storage: the lease of the marker decides who sweeps, and the time it holds when the last
    sweep ended tells the others that it is not due yet."""
    pause = interval.total_seconds()
    while True:
        # Workers start together: spread their looks.
        await asyncio.sleep(pause * (0.5 + random.random() / 2))
        try:
            await sweep_if_due(registry, interval)
        except LeaseBusy:
            pass  # another process sweeps
        except Exception:
            log.exception("sweeping expired mirror content failed")


async def sweep_if_due(registry: Registry, interval: timedelta) -> SweepResult | None:
    """A sweep when the last one ended ``interval`` ago (None otherwise); LeaseBusy while
    another process sweeps."""
    driver, marker = registry.driver, paths.mirror_sweep_marker()
    if not await _due(driver, interval):
        return None
    if not await _exists(driver, marker):
        await driver.put_content(marker, _EPOCH)  # a lease is taken on a file
    async with await driver.lease(marker):
        if not await _due(driver, interval):  # swept meanwhile
            return None
        result = await sweep_mirrors(registry)
        await driver.put_content(marker, _now())
        return result


_EPOCH = b"1970-01-01T00:00:00Z"


def _now() -> bytes:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
