"""The sweep: remove doomed manifests, then every blob nothing kept needs.

Each deletion follows safety rules 2 and 5: claim, look again at what was recent, delete what
is still old, give the claims back. Blobs of a claimed batch are looked at and deleted a few
at once (``BLOBS_AT_ONCE``), all finished before the batch's claims are given back. Manifests
are all claimed first, since one that stays (pinned by a push, or pushed again) keeps its
doomed children and referrers with it. A
manifest goes with its referrer entry, its tag index entries and its revision link (in that
order, so that an interrupted sweep leaves a revision a rerun still finds); a blob with its
directory under ``blobs/`` and its layer link in every repository that had one when the mark
read it. What a deletion cannot remove is reported, not retried: the next collection tries
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from wharf.errors import RegistryError
from wharf.reference import Digest, Tag
from wharf.registry.gc.coordination import CollectorLease
from wharf.registry.gc.inventory import BlobEntry, walk_blobs
from wharf.registry.gc.mark import DoomedManifest, MarkResult
from wharf.registry.gc.progress import Progress
from wharf.registry.gc.safety import Freshness
from wharf.storage import paths
from wharf.storage.driver import DriverError, PathNotFound, StorageDriver

__all__ = ["SweepResult", "sweep"]

log = logging.getLogger("wharf.gc")

#: Digests claimed at once: small enough that a claim is held only for a moment.
BATCH = 100
#: Blobs of a batch looked at and deleted at once.
BLOBS_AT_ONCE = 16


@dataclass(slots=True)
class SweepResult:
    manifests_removed: list[str] = field(default_factory=list)
    #: Doomed manifests that survived: pinned by a push, or written again since the mark.
    manifests_spared: int = 0
    blobs: int = 0
    blobs_removed: list[Digest] = field(default_factory=list)
    bytes_removed: int = 0
    links_removed: int = 0
    #: Unreferenced blobs kept because they or a link to them are younger than the grace.
    recent: int = 0
    recent_bytes: int = 0
    #: Unreferenced blobs kept because an upload or a push in progress needs them.
    in_use: int = 0
    in_use_bytes: int = 0
    errors: list[str] = field(default_factory=list)


async def sweep(
    driver: StorageDriver,
    marked: MarkResult,
    freshness: Freshness,
    lease: CollectorLease | None,
    progress: Progress,
) -> SweepResult:
    """Sweep; without a lease (a dry run) only count what would go."""
    result = SweepResult()
    progress.phase("removing manifests", len(marked.doomed))
    await _manifests(driver, marked, freshness, lease, result, progress)
    progress.done()

    progress.phase("scanning blobs")
    candidates: list[BlobEntry] = []
    async for blob in walk_blobs(driver):
        result.blobs += 1
        progress.advance()
        if blob.digest in marked.marked:
            continue
        if marked.pending.protects(blob.digest, blob.size):
            result.in_use += 1
            result.in_use_bytes += blob.size
        elif freshness.recent(blob.modified) or any(
            freshness.recent(modified) for _, modified in marked.links.get(blob.digest, ())
        ):
            result.recent += 1
            result.recent_bytes += blob.size
        else:
            candidates.append(blob)
    progress.done()

    progress.phase("removing blobs", len(candidates))
    for start in range(0, len(candidates), BATCH):
        batch = candidates[start : start + BATCH]
        await _blobs(driver, batch, marked, freshness, lease, result)
        progress.advance(len(batch))
    progress.done()
    return result


_Key = tuple[str, Digest]


def _key(doomed: DoomedManifest) -> _Key:
    return doomed.repository.value, doomed.digest


async def _manifests(
    driver: StorageDriver,
    marked: MarkResult,
    freshness: Freshness,
    lease: CollectorLease | None,
    result: SweepResult,
    progress: Progress,
) -> None:
    doomed = marked.doomed
    if lease is None:
        result.manifests_removed += [f"{d.repository.value}@{d.digest}" for d in doomed]
        progress.advance(len(doomed))
        return
    claimed: set[str] = set()
    removed = len(result.manifests_removed)
    try:
        # Everything is claimed before anything goes: whether a manifest stays decides
        # whether its children and referrers stay, and a claim keeps that decision stable.
        for start in range(0, len(doomed), BATCH):
            claimed |= await lease.claim([str(d.digest) for d in doomed[start : start + BATCH]])
        spared = {_key(d) for d in doomed if str(d.digest) not in claimed}
        for item in doomed:
            if _key(item) not in spared and await _written_again(driver, item, freshness, result):
                spared.add(_key(item))
        spared = _with_what_they_reach(doomed, spared)
        going = {str(d.digest) for d in doomed if _key(d) not in spared}
        # A digest that goes from no repository may be pinned by pushes again at once; one
        # that goes from some repository stays claimed until it is gone, so that no push can
        # write a revision link the removal then deletes.
        await lease.unclaim(sorted(claimed - going))
        for item in doomed:
            if _key(item) in spared or not await _remove_manifest(driver, item, lease, result):
                # A manifest that stays keeps what it references, as if it had been marked.
                result.manifests_spared += 1
                marked.marked.add(item.digest)
                marked.marked.update(item.references)
            else:
                result.manifests_removed.append(f"{item.repository.value}@{item.digest}")
            progress.advance()
    finally:
        if len(result.manifests_removed) != removed:
            # Before the claims go: a push that may pin a removed manifest from now on must
            # also drop its cached "it exists" (an index must not list a removed child).
            await lease.announce()
        await lease.unclaim(sorted(claimed))


def _with_what_they_reach(doomed: Sequence[DoomedManifest], spared: set[_Key]) -> set[_Key]:
    """Spared manifests keep their doomed children and referrers, recursively."""
    by_key = {_key(d): d for d in doomed}
    referrers: dict[_Key, list[_Key]] = {}
    for item in doomed:
        if item.subject is not None:
            referrers.setdefault((item.repository.value, item.subject), []).append(_key(item))
    reached = set(spared)
    queue = list(spared)
    while queue:
        repository, digest = queue.pop()
        item = by_key[(repository, digest)]
        for found in [(repository, c) for c in item.children] + referrers.get(
            (repository, digest), []
        ):
            if found in by_key and found not in reached:
                reached.add(found)
                queue.append(found)
    return reached


async def _written_again(
    driver: StorageDriver, doomed: DoomedManifest, freshness: Freshness, result: SweepResult
) -> bool:
    """Rule 5 for manifests: pushed again since the mark (or unreadable: kept)."""
    try:
        link = await driver.stat(paths.manifest_revision_link(doomed.repository, doomed.digest))
    except PathNotFound:
        return False  # deleted meanwhile: finish the job, leftovers included
    except DriverError as error:
        result.errors.append(f"{doomed.repository.value}@{doomed.digest}: {error}")
        return True
    return freshness.recent(link.modified)


async def _remove_manifest(
    driver: StorageDriver,
    doomed: DoomedManifest,
    lease: CollectorLease,
    result: SweepResult,
) -> bool:
    name, digest = doomed.repository, doomed.digest
    lease.check()
    targets = []
    if doomed.subject is not None:
        targets.append(paths.referrer_dir(name, doomed.subject, digest))
    for tag in doomed.tags:
        with contextlib.suppress(RegistryError):
            # The entry's directory, as Distribution's vacuum removes it.
            targets.append(paths.tag_index_link(name, Tag(tag), digest).rpartition("/")[0])
    targets.append(paths.digest_tags_dir(name, digest))  # before the revision, as a delete
    targets.append(paths.manifest_revision_dir(name, digest))
    for target in targets:
        try:
            await driver.delete(target)
        except PathNotFound:
            pass
        except DriverError as error:
            result.errors.append(f"{name.value}@{digest}: {error}")
            return False
    log.debug("garbage collection: removed manifest %s@%s", name.value, digest)
    return True


async def _blobs(
    driver: StorageDriver,
    batch: Sequence[BlobEntry],
    marked: MarkResult,
    freshness: Freshness,
    lease: CollectorLease | None,
    result: SweepResult,
) -> None:
    if lease is None:
        for blob in batch:
            result.blobs_removed.append(blob.digest)
            result.bytes_removed += blob.size
            result.links_removed += len(marked.links.get(blob.digest, ()))
        return
    claimed = await lease.claim([str(b.digest) for b in batch])
    slots = asyncio.Semaphore(BLOBS_AT_ONCE)

    async def one(blob: BlobEntry) -> None:
        async with slots:
            if str(blob.digest) not in claimed:
                result.in_use += 1  # pinned by a push in progress
                result.in_use_bytes += blob.size
            elif await _still_old(driver, blob, marked, freshness):
                await _remove_blob(driver, blob, marked, lease, result)
            else:
                result.recent += 1
                result.recent_bytes += blob.size

    try:
        # Each blob on its own (its claim, its look, its deletes): several in flight, so that
        # on a network store the sweep waits for one round trip a few blobs, not one a blob.
        # Every one finished before the claims go back, also when one failed (a lost lease).
        outcomes = await asyncio.gather(*(one(blob) for blob in batch), return_exceptions=True)
        if failed := next((o for o in outcomes if isinstance(o, BaseException)), None):
            raise failed
    finally:
        await lease.unclaim(sorted(claimed))


async def _still_old(
    driver: StorageDriver, blob: BlobEntry, marked: MarkResult, freshness: Freshness
) -> bool:
    """Rule 5: the data and every known link, looked at again after the claim."""
    try:
        data = await driver.stat(paths.blob_data(blob.digest))
        if freshness.recent(data.modified):
            return False
        for repository, _ in marked.links.get(blob.digest, ()):
            with contextlib.suppress(PathNotFound):
                link = await driver.stat(paths.layer_link(repository, blob.digest))
                if freshness.recent(link.modified):
                    return False
    except PathNotFound:
        return True  # already gone: its links still go
    except DriverError:
        return False
    return True


async def _remove_blob(
    driver: StorageDriver,
    blob: BlobEntry,
    marked: MarkResult,
    lease: CollectorLease,
    result: SweepResult,
) -> None:
    lease.check()
    try:
        await driver.delete(paths.blob_dir(blob.digest))
    except PathNotFound:
        pass
    except DriverError as error:
        result.errors.append(f"{blob.digest}: {error}")
        return
    result.blobs_removed.append(blob.digest)
    result.bytes_removed += blob.size
    for repository, _ in marked.links.get(blob.digest, ()):
        try:
            await driver.delete(paths.layer_dir(repository, blob.digest))
            result.links_removed += 1
        except PathNotFound:
            pass
        except DriverError as error:
            result.errors.append(f"{repository.value}: link {blob.digest}: {error}")
    log.debug("garbage collection: removed blob %s (%d bytes)", blob.digest, blob.size)
