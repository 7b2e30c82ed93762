"""Why a collection running while the registry serves pushes loses nothing.

Storage is assumed strongly consistent (a write is seen by every later read and listing), as
the filesystem and S3 are. A *writer* is a manifest PUT: it checks that the blobs and child
manifests it references exist, then stores the manifest and writes its revision link, referrer
entry and tag. The collector *marks* (reads every repository) and then *sweeps* (deletes).

The invariant: **no manifest PUT succeeds referencing a blob or manifest that the collector
deletes.** It rests on five rules.

1. *Epoch and barrier.* Before it reads anything, the collector starts an epoch in the
   coordination (``storage.gc.lockdir`` on one machine, Redis on several) and waits until every
   writer that started before the epoch has ended. A writer therefore either ended before the
   mark began, and the mark sees its links, or runs inside the epoch and *pins* every digest it
   depends on (its own, its blobs', its children's) before its existence checks.
2. *Claim excludes pin.* Just before deleting a digest the collector *claims* it; claims and
   pins are atomic with respect to each other. Pinned first: the claim fails and the digest is
   kept. Claimed first: the writer's pin fails and so does its PUT, with MANIFEST_BLOB_UNKNOWN,
   before it has linked anything. A manifest that stays this way keeps its doomed children
   and referrers. The collector deletes only while its lease is alive, so a claim is never
   forgotten while the deletion it announced is under way.
3. *Recent writes (the grace period).* A push uploads its blobs first and puts the manifest
   last; in between, nothing references the blobs. So a blob whose data or any layer link is
   younger than the grace period is kept, and (with ``--delete-untagged``) so is a manifest
   whose revision link is: children are pushed before their index, referrers often untagged.
   The grace period must exceed the longest time between a client's first blob upload and its
   manifest PUT (default 1h), plus any clock difference between collector and storage.
4. *Uploads in progress.* A session's data lies outside ``blobs/`` until completion moves it
   there (keeping its modification time) and links it; a body whose digest came with it may
   instead be written at its place in ``blobs/`` (on stores where a move copies), invisible
   until it is complete and then new. Data written after the cutoff is recent (rule 3). An
   idle session's saved hash state gives the digest its data becomes if completed as it is
   (more data would make it recent): that digest is kept; a session without a usable hash
   state keeps every blob of its size. Per repository the sessions are read before the
   layer links, and a completion moves, links, then removes the session: so either the
   collector saw the session, or the link it wrote was already there when the links were read.
   This is why the grace period need not exceed ``maintenance.uploadpurging.age``: how long a
   session waited does not matter, only what it becomes and when it is linked.
5. *Re-check after the claim.* A claimed blob's data and links are looked at again and it is
   deleted only when all are still older than the cutoff (an upload may have linked it again).

What is left is a failed push, never a broken image: a client that skipped a blob because HEAD
found it, when that blob was old, unreferenced and swept between the HEAD and the manifest
PUT, gets MANIFEST_BLOB_UNKNOWN and pushes again. Distribution's collector, by contrast, deletes
blobs of pushes in progress and lets a manifest be linked to deleted layers.

Caches: the coordination's generation changes when a collection starts, when it has removed
manifests (before their claims are given back) and when it ends; a writer that sees a new
generation drops its worker's cached views first, so that an index PUT never trusts a cached
"child exists" for a child just removed. A collector running inside the server also changes
the registry-wide epoch of its workers' caches directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from wharf.errors import RegistryError
from wharf.hashing import restore_hasher
from wharf.reference import SUPPORTED_ALGORITHMS, Digest, RepositoryName
from wharf.storage import paths
from wharf.storage.driver import DriverError, StorageDriver

__all__ = ["Freshness", "PendingUploads", "Session", "pending_uploads"]


@dataclass(frozen=True, slots=True)
class Freshness:
    """Whether something was written after ``cutoff`` (the mark's start less the grace);
    nothing is, without a cutoff (no registry serves the storage)."""

    cutoff: datetime | None

    def recent(self, modified: datetime | None) -> bool:
        if self.cutoff is None:
            return False
        # A driver that cannot tell when something was written gets the benefit of the doubt.
        return modified is None or modified >= self.cutoff


@dataclass(slots=True)
class PendingUploads:
    """What the upload sessions in progress may become."""

    digests: set[Digest] = field(default_factory=set)
    #: Sizes of sessions whose digest is unknown: every blob of such a size is kept.
    sizes: set[int] = field(default_factory=set)

    def protects(self, digest: Digest, size: int) -> bool:
        return digest in self.digests or size in self.sizes

    def update(self, other: PendingUploads) -> None:
        self.digests |= other.digests
        self.sizes |= other.sizes


@dataclass(slots=True)
class Session:
    """An upload session as a listing of its directory shows it."""

    upload_id: str
    #: Size of its data; None when it has none yet, or the driver holds it until commit.
    size: int | None = None
    #: Algorithm -> the names in its hash state directory (offsets, where well formed).
    states: dict[str, list[str]] = field(default_factory=dict)


async def pending_uploads(
    driver: StorageDriver, name: RepositoryName, sessions: Iterable[Session]
) -> PendingUploads:
    pending = PendingUploads()
    for session in sessions:
        digest = await _saved_digest(driver, name, session)
        if digest is not None:
            pending.digests.add(digest)
        elif session.size:
            pending.sizes.add(session.size)
    return pending


async def _saved_digest(
    driver: StorageDriver, name: RepositoryName, session: Session
) -> Digest | None:
    """The digest of the session's data as its newest hash state has it, when that state
    covers all the data there is."""
    for algorithm in SUPPORTED_ALGORITHMS:
        states = session.states.get(algorithm, [])
        offsets = sorted((int(s) for s in states if s.isdigit()), reverse=True)
        if not offsets or (session.size is not None and offsets[0] != session.size):
            continue
        with contextlib.suppress(DriverError, RegistryError, ValueError):
            state = await driver.get_content(
                paths.upload_hash_state(name, session.upload_id, algorithm, offsets[0])
            )
            hasher = restore_hasher(algorithm, state)
            if hasher is not None and hasher.size == offsets[0]:
                return Digest(algorithm, hasher.hexdigest())
    return None
