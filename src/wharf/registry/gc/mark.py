"""The mark phase: which manifests each repository keeps, and which blobs they need.

As Distribution's ``MarkAndSweep``, every manifest revision is kept, and with
``delete_untagged`` only those reachable from a tag. Unlike it:

- reachability follows index children *and referrers*: a manifest whose subject is kept is
  kept, recursively (Distribution drops children of a kept index when they are untagged
  elsewhere and never keeps referrers);
- recent revisions (safety rule 3), manifests that cannot be read, and every manifest of an
  uncertain repository are kept too;
- a kept manifest that cannot be read keeps every blob its repository links, since what it
  references is unknown;
- untagged is decided per repository: an image tagged in one repository and untagged in
  another is removed from the other (Distribution keeps it when any repository marks it).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from wharf.reference import Digest, RepositoryName
from wharf.registry.gc.inventory import RepositoryInventory, read_inventories
from wharf.registry.gc.progress import Progress
from wharf.registry.gc.references import ManifestRefs, read_refs
from wharf.registry.gc.safety import Freshness, PendingUploads
from wharf.registry.tasks import for_each
from wharf.storage import paths
from wharf.storage.driver import DriverError, StorageDriver

__all__ = ["DoomedManifest", "MarkResult", "kept_manifests", "mark"]

log = logging.getLogger("wharf.gc")

#: Manifests read at once.
_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class DoomedManifest:
    """A manifest revision to remove, with what must go with it."""

    repository: RepositoryName
    digest: Digest
    subject: Digest | None
    #: Every tag of the repository: each may hold an index entry for this revision.
    tags: tuple[str, ...]
    #: What it references, marked again should it survive the sweep.
    references: frozenset[Digest]
    #: Its index children, which survive with it.
    children: frozenset[Digest] = frozenset()


@dataclass(slots=True)
class MarkResult:
    repositories: int = 0
    manifests: int = 0
    marked: set[Digest] = field(default_factory=set)
    doomed: list[DoomedManifest] = field(default_factory=list)
    #: Blob digest -> (repository, link modification time) of every layer link.
    links: dict[Digest, list[tuple[RepositoryName, datetime | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    pending: PendingUploads = field(default_factory=PendingUploads)
    #: Manifests kept because they could not be read, as "repository@digest".
    unreadable: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)


def kept_manifests(
    inventory: RepositoryInventory,
    refs: dict[Digest, ManifestRefs | None],
    freshness: Freshness,
    delete_untagged: bool,
) -> set[Digest]:
    """The revisions of one repository that stay."""
    revisions = inventory.revisions
    if not delete_untagged or inventory.uncertain:
        return set(revisions)
    referrers: dict[Digest, list[Digest]] = defaultdict(list)
    for digest in revisions:
        found = refs.get(digest)
        if found is not None and found.subject is not None:
            referrers[found.subject].append(digest)
    roots = {d for d in inventory.tags.values() if d in revisions}
    roots |= {d for d, modified in revisions.items() if freshness.recent(modified)}
    roots |= {d for d in revisions if refs.get(d) is None}
    kept: set[Digest] = set()
    queue = list(roots)
    while queue:
        digest = queue.pop()
        if digest in kept:
            continue
        kept.add(digest)
        found = refs.get(digest)
        if found is not None:
            queue.extend(c for c in found.children if c in revisions)
        queue.extend(referrers.get(digest, ()))
    return kept


async def mark(
    driver: StorageDriver, freshness: Freshness, delete_untagged: bool, progress: Progress
) -> MarkResult:
    result = MarkResult()
    # Offline (no cutoff) nothing is written meanwhile: sessions need no walk of their own.
    inventories = await read_inventories(
        driver, progress, sessions_first=freshness.cutoff is not None
    )
    result.repositories = len(inventories)
    manifests = {digest for inventory in inventories for digest in inventory.revisions}
    progress.phase("reading manifests", len(manifests))
    refs: dict[Digest, ManifestRefs | None] = {}

    async def load(digest: Digest) -> None:
        try:
            body = await driver.get_content(paths.blob_data(digest))
        except DriverError:
            refs[digest] = None
        else:
            refs[digest] = read_refs(body)
        progress.advance()

    await for_each(manifests, load, _CONCURRENCY)
    progress.phase("marking repositories", len(inventories))
    for inventory in inventories:
        _mark_repository(result, inventory, refs, freshness, delete_untagged)
        progress.advance()
    progress.done()
    return result


def _mark_repository(
    result: MarkResult,
    inventory: RepositoryInventory,
    refs: dict[Digest, ManifestRefs | None],
    freshness: Freshness,
    delete_untagged: bool,
) -> None:
    name = inventory.name
    result.manifests += len(inventory.revisions)
    result.pending.update(inventory.pending)
    result.uncertain += [f"{name.value}: {reason}" for reason in inventory.uncertain]
    for digest, modified in inventory.layers.items():
        result.links[digest].append((name, modified))
    kept = kept_manifests(inventory, refs, freshness, delete_untagged)
    for digest in inventory.revisions:
        found = refs.get(digest)
        if digest not in kept:
            result.doomed.append(
                DoomedManifest(
                    name,
                    digest,
                    found.subject if found else None,
                    tuple(inventory.tag_names),
                    found.everything if found else frozenset(),
                    found.children if found else frozenset(),
                )
            )
            continue
        result.marked.add(digest)
        if found is None:
            log.warning(
                "garbage collection: cannot read manifest %s@%s; keeping every blob %s links",
                name.value,
                digest,
                name.value,
            )
            result.unreadable.append(f"{name.value}@{digest}")
            result.marked.update(inventory.layers)
        else:
            result.marked.update(found.everything)
