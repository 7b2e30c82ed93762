"""Resumable blob uploads.

An upload session is ``_uploads/<id>/`` in the repository: ``startedat``, the ``data``
received so far, and the hash state after each completed request under
``hashstates/<alg>/<offset>``, kept until the session ends as Distribution keeps them.
Everything a request needs is in storage, so any process sharing it can continue a session,
also after a restart.

One request at a time. Every request that writes to a session (a PATCH, the completing PUT,
a cancel) first takes the lease of its ``startedat`` from the storage driver, without
waiting: a second request, from any worker or instance, is refused (416) instead of writing
beside the first, and once the session is completed or cancelled its ``startedat`` is gone, so
a late request finds no session (404). Under the lease the request checks that the session
holds exactly the bytes the client believes it sent (the offset of its ``_state`` or its
Content-Range), so a stale or replayed URL is refused too. The session's files are deleted
``startedat`` first, so that nobody can take the lease of a session being deleted.

Received bytes are hashed and written in a pipeline (``upload_pipeline``). Completion is the
sequence of Distribution's blob writer, each step safe to repeat: make the data durable,
check that storage holds as many bytes as were hashed, verify the digest, move the data into
the content-addressed store, link it into the repository, remove the session. A blob already
in the store with the same size counts as the same blob; one with another size is corrupt
(written by something that did not verify it) and the verified bytes replace it.

Each process remembers what a session's last request in it left (its size, hash, and the
driver's ``resume_state``: on S3 the multipart upload and its parts), so that the next request
to the same process continues without reading storage. The memory is used only when the
lease proves that nobody wrote in between: the driver's next turn after the one remembered
(S3), or a file whose size is still the one remembered (append-only files, where the lease
counts no turns).

On a driver whose ``move`` copies the data (``write_in_place``: S3), a whole blob sent with
its digest to a session holding nothing yet is written straight to its place in the store
instead, and committed there only once its digest verifies: the copy, which on S3 takes as
long as the upload itself, never happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import overload

from wharf.coherence.caches import RegistryCache
from wharf.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
    Unavailable,
)
from wharf.hashing import new_hasher
from wharf.reference import Digest, RepositoryName
from wharf.registry.blobs import BlobInfo, BlobStore, RepositoryBlobs
from wharf.registry.upload_hashes import SessionHashes
from wharf.registry.upload_pipeline import BATCH_SIZE, pump
from wharf.registry.upload_session import (
    Held,
    SessionMemo,
    UploadSession,
    format_started_at,
)
from wharf.storage import paths
from wharf.storage.driver import (
    DriverError,
    FileWriter,
    Lease,
    LeaseBusy,
    LeaseLost,
    PathNotFound,
    StorageDriver,
)

__all__ = [
    "BATCH_SIZE",
    "FillBusy",
    "Uploads",
]

log = logging.getLogger("wharf.uploads")

_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CANONICAL = "sha256"


class Uploads:
    """The upload sessions of one repository."""

    def __init__(
        self,
        driver: StorageDriver,
        blobs: RepositoryBlobs,
        store: BlobStore,
        hash_executor: Executor,
        cache: RegistryCache,
    ) -> None:
        self.driver = driver
        self.blobs = blobs
        self.store = store
        self.name: RepositoryName = blobs.name
        self.executor = hash_executor
        self.cache = cache

    # -- sessions ---------------------------------------------------------------------------

    async def create(self) -> str:
        upload_id = str(uuid.uuid4())
        await self.driver.put_content(
            paths.upload_started_at(self.name, upload_id), format_started_at(datetime.now(UTC))
        )
        return upload_id

    def check_id(self, upload_id: str) -> None:
        """BlobUploadUnknown unless ``upload_id`` can name a session."""
        if not _UPLOAD_ID_RE.fullmatch(upload_id):
            raise BlobUploadUnknown({"upload": upload_id[:100]})

    async def require(self, upload_id: str) -> None:
        """BlobUploadUnknown unless the session exists."""
        self.check_id(upload_id)
        try:
            await self.driver.stat(paths.upload_started_at(self.name, upload_id))
        except PathNotFound:
            raise BlobUploadUnknown({"upload": upload_id}) from None

    async def size(self, upload_id: str) -> int:
        """Bytes received so far; BlobUploadUnknown for an unknown session. Read without the
        lease, so it writes nothing: not even the empty data file a first PATCH makes."""
        writer = await self._open_writer(upload_id, create=False)
        if writer is None:
            return 0
        size = writer.size
        await writer.close()
        return size

    @overload
    async def _open_writer(self, upload_id: str, *, exists: bool = False) -> FileWriter: ...

    @overload
    async def _open_writer(
        self, upload_id: str, *, create: bool, exists: bool = False
    ) -> FileWriter | None: ...

    async def _open_writer(
        self, upload_id: str, *, create: bool = True, exists: bool = False
    ) -> FileWriter | None:
        """A writer appending to the session's data (None when there is none and not
        ``create``); BlobUploadUnknown for an unknown session. ``exists``: the caller knows
        the session exists (a lease taken without a hint looked).

        Uncommitted data is visible only through a writer (an S3 multipart upload has no
        object yet), so the size of a session is always asked of one. Opening one to append
        changes nothing in storage, so it is opened while the session's existence is checked:
        on S3 these are requests of their own."""
        self.check_id(upload_id)
        data_path = paths.upload_data(self.name, upload_id)
        appending = asyncio.ensure_future(self.driver.writer(data_path, append=True))
        try:
            if not exists:
                await self.driver.stat(paths.upload_started_at(self.name, upload_id))
        except BaseException as error:
            with contextlib.suppress(Exception):
                await (await appending).close()
            if isinstance(error, PathNotFound):
                raise BlobUploadUnknown({"upload": upload_id}) from None
            raise
        try:
            return await appending
        except PathNotFound:
            if not create:
                return None
            return await self.driver.writer(data_path, append=False)

    @contextlib.asynccontextmanager
    async def _leased(self, upload_id: str, *, fill: bool = False) -> AsyncIterator[Held]:
        """The session's lease, for one request: busy is a 416, gone a 404 (for a ``fill``,
        both are FillBusy)."""
        self.check_id(upload_id)
        memo = self._recall(upload_id)
        try:
            lease = await self.driver.lease(
                paths.upload_started_at(self.name, upload_id),
                after=memo.turn if memo is not None else None,
            )
        except (PathNotFound, LeaseBusy) as error:
            if fill:
                raise FillBusy(upload_id) from None
            if isinstance(error, PathNotFound):
                raise BlobUploadUnknown({"upload": upload_id}) from None
            raise RangeInvalid(
                {"upload": upload_id}, message="the upload is being written by another request"
            ) from None
        held = Held(lease, memo)
        try:
            yield held
        except LeaseLost:
            raise Unavailable(
                {"upload": upload_id},
                message="the upload's lease expired while it was written: ask for its status",
            ) from None
        finally:
            # Shielded: a cancelled request must still let the next one in.
            await asyncio.shield(lease.release(deleted=held.deleted))

    # -- what this process remembers of a session -------------------------------------------

    def _key(self, upload_id: str) -> str:
        return f"{self.name.value}/{upload_id}"

    def _recall(self, upload_id: str) -> SessionMemo | None:
        return self.cache.upload_sessions.get(self._key(upload_id))

    def _remember(self, session: UploadSession, state: bytes | None, lease: Lease) -> None:
        """Keep ``state``, the hash state just saved, with the writer's; without one there is
        nothing to continue from."""
        key = self._key(session.id)
        if state is None:
            self.cache.upload_sessions.discard(key)
            return
        memo = SessionMemo(
            session.size,
            state,
            session.writer.resume_state(),
            lease.turn,
            session.received_here,
        )
        self.cache.upload_sessions.put(key, memo.memory_size, memo)

    def _forget(self, upload_id: str) -> None:
        self.cache.upload_sessions.discard(self._key(upload_id))

    def _hashes(self, upload_id: str) -> SessionHashes:
        return SessionHashes(self.driver, self.name, upload_id, self.executor)

    async def _open(
        self, upload_id: str, held: Held, expected: int, algorithm: str = _CANONICAL
    ) -> UploadSession:
        """The session with its writer and hash, holding ``expected`` bytes (RangeInvalid
        otherwise)."""
        memo = held.memo
        if memo is not None and memo.size == expected and held.follows(memo):
            resumed = await self._resume(upload_id, memo)
            if resumed is not None:
                return resumed
        hashes = self._hashes(upload_id)
        state = asyncio.ensure_future(hashes.load(expected)) if expected else None
        try:
            # A lease taken without the hint of a turn looked for the session's file.
            writer = await self._open_writer(upload_id, exists=held.memo is None)
        except BaseException:
            _discard(state)
            raise
        try:
            if writer.size != expected:
                raise RangeInvalid(
                    {"expected": writer.size, "got": expected},
                    message="the upload does not end where this request starts",
                )
            hasher = await state if state is not None else new_hasher(algorithm)
            if hasher is None:
                hasher = await hashes.resume(writer.size, algorithm, skip_saved=True)
        except BaseException:
            _discard(state)
            await writer.close()
            raise
        return UploadSession(upload_id, writer, hasher, received_here=not expected)

    async def _resume(self, upload_id: str, memo: SessionMemo) -> UploadSession | None:
        """The session as this process's last request left it; None when storage turns out
        to hold something else (the caller then reads it)."""
        hasher = SessionHashes.restore(memo.hash_state)
        if hasher is None or hasher.size != memo.size:
            return None
        try:
            writer = await self.driver.resume_writer(
                paths.upload_data(self.name, upload_id), memo.writer_state
            )
        except PathNotFound:
            return None
        if writer.size != memo.size:
            await writer.close()
            return None
        return UploadSession(upload_id, writer, hasher, received_here=memo.received_here)

    # -- requests ---------------------------------------------------------------------------

    async def append(
        self,
        upload_id: str,
        body: AsyncIterator[bytes],
        *,
        start: int,
        length: int | None = None,
        size_hint: int | None = None,
    ) -> int:
        """Append a request body to a session holding ``start`` bytes; its new size.
        ``length``: the body's size, enforced; ``size_hint``: what it is said to be."""
        async with self._leased(upload_id) as held:
            session = await self._open(upload_id, held, start)
            announced = length if length is not None else size_hint
            if announced:
                session.writer.announce(announced)
            try:
                received = await self._pump(session, body)
                if length is not None and received != length:
                    raise RangeInvalid(
                        {"expected": length, "got": received},
                        message="content range does not match the body",
                    )
                held.lease.check()
            except BaseException:
                await session.writer.close()
                raise
            # The hash state is saved while the writer stores its last bytes (the request
            # would otherwise wait for both in turn). If either fails, the state at this size
            # is deleted: no state may name bytes that storage does not hold, or that the
            # state does not hash.
            hashes = self._hashes(upload_id)
            saving = asyncio.ensure_future(hashes.save(session.hasher, session.size, held.lease))
            try:
                await session.writer.close()
                state = await saving
            except BaseException:
                await hashes.withdraw(saving, session.size)
                raise
        self._remember(session, state, held.lease)
        return session.size

    async def complete(
        self,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes] | None = None,
        *,
        start: int,
    ) -> BlobInfo:
        """Receive the last bytes of a session holding ``start`` bytes, verify them against
        ``digest`` and publish the blob."""
        async with self._leased(upload_id) as held:
            self._forget(upload_id)
            if body is not None and not start and self.driver.write_in_place:
                size = await self._store_in_place(upload_id, held, digest, body)
            else:
                session = await self._open(upload_id, held, start, digest.algorithm)
                size, _ = await self._store_session(session, held, digest, body)
            # The session is of no use once its bytes are the blob's. Nobody can take it
            # once ``startedat`` is gone, which may go beside the link (which announces the
            # change); the rest only after it: a collection must see the session or the link
            # (safety rule 4 in ``wharf.registry.gc.safety``).
            await _together(self.blobs.link(digest), self._close_session(upload_id, held))
            await self._remove(upload_id, held)
        return BlobInfo(digest, size)

    async def publish(self, upload_id: str, *, start: int) -> BlobInfo:
        """Publish a session holding ``start`` bytes as the blob its bytes hash to (sha256),
        whatever that is: for uploads whose digest the client does not send (tus)."""
        async with self._leased(upload_id) as held:
            self._forget(upload_id)
            session = await self._open(upload_id, held, start)
            size, digest = await self._store_session(session, held, None, None)
            await self.blobs.link(digest)
            await self._remove(upload_id, held)
        return BlobInfo(digest, size)

    async def _store_session(
        self,
        session: UploadSession,
        held: Held,
        digest: Digest | None,
        body: AsyncIterator[bytes] | None,
    ) -> tuple[int, Digest]:
        """Commit the session's data, verify it against ``digest`` (None: take the digest of
        the bytes) and move it into the store; its size and digest."""
        holding: asyncio.Future[bool] | None = None
        try:
            if body is not None:
                await self._pump(session, body)
            size = session.size
            # Where leases exclude only this machine's processes, another machine may have
            # written beside an earlier request: then only the stored bytes tell what they
            # are.
            trusted = session.hasher is not None and (
                self.driver.exclusive_leases or session.received_here
            )
            algorithm = digest.algorithm if digest is not None else _CANONICAL
            known = None
            if trusted and session.hasher is not None and session.hasher.algorithm == algorithm:
                known = session.hasher.hexdigest()
            if digest is not None and known == digest.hex:
                # Verified already: whether the store has the blob is asked while the data
                # is committed (a read, moot if the commit fails).
                holding = asyncio.ensure_future(self._holds(digest, size))
            held.lease.check()
            await session.writer.commit()
        except BaseException:
            _discard(holding)
            await session.writer.close()
            raise
        data = paths.upload_data(self.name, session.id)
        stored = session.writer.served_size
        if stored is None:
            try:
                stored = (await self.driver.stat(data)).size
            except BaseException:
                _discard(holding)
                raise
        if stored != size:
            _discard(holding)
            await self._remove(session.id, held)
            raise BlobUploadInvalid(
                {"received": size, "stored": stored},
                message="the upload's stored data is not what was received",
            )
        if known is not None:
            actual = known
        else:
            rehash = new_hasher(algorithm)
            await self._hashes(session.id).hash_stored(rehash, 0, size)
            actual = rehash.hexdigest()
        if digest is None:
            digest = Digest.parse(f"{algorithm}:{actual}")
        await self._verify(session.id, held, digest, actual)
        holds = await (holding if holding is not None else self._holds(digest, size))
        if not holds:
            held.lease.check()
            await self.driver.move(data, paths.blob_data(digest))
        return size, digest

    async def _holds(self, digest: Digest, size: int) -> bool:
        """Whether the store holds ``digest`` as ``size`` bytes already; a blob of another
        size is corrupt, and is to be replaced by the verified bytes."""
        try:
            existing = await self.store.stat(digest)
        except BlobUnknown:
            return False
        if existing.size == size:
            return True
        log.warning(
            "blob %s holds %d bytes where %d verified ones were received: replacing it",
            digest,
            existing.size,
            size,
        )
        return False

    async def _store_in_place(
        self, upload_id: str, held: Held, digest: Digest, body: AsyncIterator[bytes]
    ) -> int:
        """Stream the whole blob to its path in the store, committed once verified; its size.
        A concurrent push of the same blob writes on its own (see ``write_in_place``)."""
        writer = await self.driver.writer(paths.blob_data(digest))
        hasher = new_hasher(digest.algorithm)
        try:
            size = await pump(body, writer, hasher, self.executor)
            await self._verify(upload_id, held, digest, hasher.hexdigest())
            held.lease.check()
            await writer.commit()
        except BaseException:
            # What failed matters, not whether cleaning up after it did too.
            with contextlib.suppress(DriverError):
                await writer.cancel()
            raise
        return size

    async def _verify(self, upload_id: str, held: Held, digest: Digest, actual: str) -> None:
        """DigestInvalid, ending the session, unless ``actual`` is the digest's hex."""
        if actual != digest.hex:
            await self._remove(upload_id, held)
            raise DigestInvalid(
                {"expected": str(digest), "computed": f"{digest.algorithm}:{actual}"}
            )

    # -- what the pull-through cache fetches ------------------------------------------------

    @contextlib.asynccontextmanager
    async def claimed(self, upload_id: str) -> AsyncIterator[Held]:
        """The exclusive claim on session ``upload_id``, made if missing, for a fetch that
        must run once across every process (the session id names what is fetched); FillBusy
        while another holds it. The session is gone on exit."""
        started_at = paths.upload_started_at(self.name, upload_id)
        try:
            await self.driver.stat(started_at)
        except PathNotFound:
            await self.driver.put_content(started_at, format_started_at(datetime.now(UTC)))
        async with self._leased(upload_id, fill=True) as held:
            try:
                yield held
            finally:
                await self._remove(upload_id, held)

    async def store_fetched(
        self, held: Held, upload_id: str, digest: Digest, body: AsyncIterator[bytes]
    ) -> BlobInfo:
        """Store ``body`` as blob ``digest`` of this repository, verified, under a claim."""
        if self.driver.write_in_place:
            size = await self._store_in_place(upload_id, held, digest, body)
        else:
            # Whatever a fetch that died left: started again from nothing.
            writer = await self.driver.writer(paths.upload_data(self.name, upload_id))
            session = UploadSession(
                upload_id, writer, new_hasher(digest.algorithm), received_here=True
            )
            size, _ = await self._store_session(session, held, digest, body)
        await self.blobs.link(digest)
        return BlobInfo(digest, size)

    async def cancel(self, upload_id: str) -> None:
        async with self._leased(upload_id) as held:
            await self._remove(upload_id, held)

    async def _close_session(self, upload_id: str, held: Held) -> None:
        """Delete ``startedat``: nobody can lease the session from then on."""
        self._forget(upload_id)
        held.deleted = True
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.upload_started_at(self.name, upload_id))

    async def _remove(self, upload_id: str, held: Held) -> None:
        """Delete the session, ``startedat`` first (if still there)."""
        if not held.deleted:
            await self._close_session(upload_id, held)
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.upload_dir(self.name, upload_id))

    async def _pump(self, session: UploadSession, body: AsyncIterator[bytes]) -> int:
        """Hash and write the body in batches; returns the bytes received."""
        return await pump(body, session.writer, session.hasher, self.executor)


class FillBusy(Exception):
    """Another request holds the claim on a fetch (or just finished it)."""


async def _together(*steps: Awaitable[object]) -> None:
    """Run ``steps`` at once, each to its end; the first failure is raised."""
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def _discard(future: Awaitable[object] | None) -> None:
    """Drop a read that is no longer wanted; what it finds or fails with is moot."""
    if isinstance(future, asyncio.Future):
        future.cancel()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
