"""Resumable blob uploads.

An upload session is ``_uploads/<id>/`` in the repository: ``startedat``, the ``data``
received so far, and the hash state after each completed request under
``hashstates/<alg>/<offset>``, kept until the session ends as Distribution keeps them.
Everything a request needs is in storage, so any process sharing it can continue a session,
also after a restart.

Received bytes are hashed and written in a pipeline: batches go to a hashing thread and to the
driver's writer concurrently, with a bounded number of batches in flight, so neither the
event loop nor the client waits for the other. Completion is the sequence of Distribution's
blob writer, each step safe to repeat: make the data durable, verify size and digest, move it
into the content-addressed store (an existing blob counts as success), link it into the
repository, remove the session.

Each process remembers what a session's last request left (its size, hash, and the driver's
``resume_state``: on S3 the multipart upload and its parts), so the next request to the same
process continues without reading storage. The memory is trusted only while the session's
change token (``generations``) is the one it was stored under, and every request that may
write to a session changes that token before it writes: another worker's request, even one
that failed half way, makes every other process read storage again. Across instances the
tokens travel through Redis, as for every other cache.

On a driver whose ``move`` copies the data (``write_in_place``: S3), a whole blob sent with
its digest to a session holding nothing yet is written straight to its place in the store
instead, and committed there only once its digest verifies: the copy, which on S3 takes as
long as the upload itself, never happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
import weakref
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime

from wharf.coherence.caches import RegistryCache
from wharf.coherence.generations import Token
from wharf.errors import BlobUploadUnknown, DigestInvalid, RangeInvalid
from wharf.hashing import Hasher, new_hasher, restore_hasher
from wharf.reference import Digest, RepositoryName
from wharf.registry.blobs import BlobInfo, BlobStore, RepositoryBlobs
from wharf.registry.upload_pipeline import BATCH_SIZE, pump
from wharf.storage import paths
from wharf.storage.driver import (
    DriverError,
    FileWriter,
    InvalidOffset,
    PathNotFound,
    ResumeState,
    StorageDriver,
)

__all__ = [
    "BATCH_SIZE",
    "SessionMemo",
    "UploadSession",
    "Uploads",
    "format_started_at",
    "parse_started_at",
    "session_token_key",
]

_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CANONICAL = "sha256"

_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()


def session_token_key(name: RepositoryName, upload_id: str) -> str:
    """The name a session's change token goes by (no repository name can end so)."""
    return f"{name.value}/_uploads/{upload_id}"


@dataclass(frozen=True, slots=True)
class SessionMemo:
    """What a session's last request in this process left behind."""

    size: int
    hash_state: bytes
    writer_state: ResumeState | None


def format_started_at(moment: datetime) -> bytes:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()


def parse_started_at(content: bytes) -> datetime | None:
    text = content.decode("ascii", "replace").strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class UploadSession:
    """An open session: the writer appending to its data and the hash of what it holds."""

    def __init__(self, upload_id: str, writer: FileWriter, hasher: Hasher | None) -> None:
        self.id = upload_id
        self.writer = writer
        self.hasher = hasher

    @property
    def size(self) -> int:
        return self.writer.size


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

    def _check_id(self, upload_id: str) -> None:
        if not _UPLOAD_ID_RE.fullmatch(upload_id):
            raise BlobUploadUnknown({"upload": upload_id[:100]})

    async def _require(self, upload_id: str) -> None:
        self._check_id(upload_id)
        try:
            await self.driver.stat(paths.upload_started_at(self.name, upload_id))
        except PathNotFound:
            raise BlobUploadUnknown({"upload": upload_id}) from None

    async def size(self, upload_id: str) -> int:
        """Bytes received so far; BlobUploadUnknown for an unknown session."""
        self._check_id(upload_id)
        memo = self._recall(upload_id)
        if memo is not None:
            return memo.size
        writer = await self._open_writer(upload_id)
        size = writer.size
        await writer.close()
        return size

    async def _open_writer(self, upload_id: str) -> FileWriter:
        """A writer appending to the session's data; BlobUploadUnknown for an unknown session.

        Uncommitted data is visible only through a writer (an S3 multipart upload has no
        object yet), so the size of a session is always asked of one. Opening one to append
        changes nothing in storage, so it is opened while the session's existence is checked:
        on S3 these are requests of their own, and every request to a session begins so.
        """
        self._check_id(upload_id)
        data_path = paths.upload_data(self.name, upload_id)
        appending = asyncio.ensure_future(self.driver.writer(data_path, append=True))
        try:
            await self._require(upload_id)
        except BaseException:
            with contextlib.suppress(Exception):
                await (await appending).close()
            raise
        try:
            return await appending
        except PathNotFound:
            return await self.driver.writer(data_path, append=False)

    # -- what this process remembers of a session -------------------------------------------

    def _token_key(self, upload_id: str) -> str:
        return session_token_key(self.name, upload_id)

    def _recall(self, upload_id: str) -> SessionMemo | None:
        key = self._token_key(upload_id)
        return self.cache.upload_sessions.get(key, self.cache.generations.token(key))

    def _claim(self, upload_id: str) -> Token:
        """Before a request writes to a session: every other process's memory of it is
        dropped. The token returned is the one this request's own memory will be valid
        under."""
        key = self._token_key(upload_id)
        self.cache.generations.changed(key)
        return self.cache.generations.token(key)

    def _remember(self, session: UploadSession, state: bytes | None, token: Token) -> None:
        """Keep ``state``, the hash state just saved, with the writer's; without one there is
        nothing to continue from."""
        key = self._token_key(session.id)
        if state is None:
            self.cache.upload_sessions.discard(key)
            return
        writer_state = session.writer.resume_state()
        memo = SessionMemo(session.size, state, writer_state)
        self.cache.upload_sessions.put(key, token, memo, _memo_size(memo))

    def _forget(self, upload_id: str) -> None:
        self.cache.upload_sessions.discard(self._token_key(upload_id))

    def lock(self, upload_id: str) -> asyncio.Lock:
        """Serialises requests to one session within this process."""
        key = (self.name.value, upload_id)
        lock = _locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            _locks[key] = lock
        return lock

    async def _open(
        self, upload_id: str, algorithm: str = _CANONICAL, *, expected_size: int | None = None
    ) -> UploadSession:
        """The session with its writer and hash. ``expected_size`` (the start of a request's
        Content-Range) is where the client says the session ends: the hash state saved there
        is read while the session is looked up, rather than after."""
        self._check_id(upload_id)
        memo = self._recall(upload_id)
        if memo is not None and expected_size in (None, memo.size):
            resumed = await self._resume(upload_id, memo)
            if resumed is not None:
                return resumed
        state: asyncio.Future[Hasher | None] | None = None
        if expected_size:
            state = asyncio.ensure_future(self._load_hash_state(upload_id, expected_size))
        try:
            writer = await self._open_writer(upload_id)
        except BaseException:
            _discard(state)
            raise
        try:
            if state is not None and writer.size == expected_size:
                hasher = await state
                if hasher is None:
                    hasher = await self._resume_hasher(
                        upload_id, writer.size, algorithm, skip_saved=True
                    )
            else:
                _discard(state)
                hasher = await self._resume_hasher(upload_id, writer.size, algorithm)
        except BaseException:
            await writer.close()
            raise
        return UploadSession(upload_id, writer, hasher)

    async def _resume(self, upload_id: str, memo: SessionMemo) -> UploadSession | None:
        """The session as this process's last request left it; None when storage turns out
        to hold something else (the caller then reads it)."""
        hasher = restore_hasher(_CANONICAL, memo.hash_state)
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
        return UploadSession(upload_id, writer, hasher)

    async def _resume_hasher(
        self, upload_id: str, size: int, algorithm: str, *, skip_saved: bool = False
    ) -> Hasher | None:
        """The hash of the session's first ``size`` bytes, or None when it cannot be had
        before the data is committed (it is then computed from storage at completion).
        ``skip_saved``: the state at ``size`` was looked for already."""
        if not size:
            return new_hasher(algorithm)
        # Each request saves the state at the size it leaves, so one read finds it. Listing
        # is for a request that ended before saving it.
        if not skip_saved:
            hasher = await self._load_hash_state(upload_id, size)
            if hasher is not None:
                return hasher
        states_dir = paths.upload_hash_states_dir(self.name, upload_id, _CANONICAL)
        offsets = sorted(
            (int(_basename(p)) for p in await self._list(states_dir) if _is_offset(p)),
            reverse=True,
        )
        hasher = None
        for offset in (o for o in offsets if o < size):
            hasher = await self._load_hash_state(upload_id, offset)
            if hasher is not None:
                break
        if hasher is None:
            hasher = new_hasher(_CANONICAL)
        if hasher.size < size:
            # Catch up from storage where the driver can read uncommitted data.
            try:
                await self._hash_stored(upload_id, hasher, hasher.size, size)
            except (PathNotFound, InvalidOffset):
                return None
        return hasher

    async def _load_hash_state(self, upload_id: str, offset: int) -> Hasher | None:
        """The saved hash of the session's first ``offset`` bytes, if storage has it."""
        path = paths.upload_hash_state(self.name, upload_id, _CANONICAL, offset)
        try:
            state = await self.driver.get_content(path)
        except PathNotFound:
            return None
        hasher = restore_hasher(_CANONICAL, state)
        return hasher if hasher is not None and hasher.size == offset else None

    async def _list(self, path: str) -> list[str]:
        try:
            return await self.driver.list(path)
        except PathNotFound:
            return []

    async def _hash_stored(self, upload_id: str, hasher: Hasher, start: int, end: int) -> None:
        loop = asyncio.get_running_loop()
        async with await self.driver.reader(paths.upload_data(self.name, upload_id), start) as r:
            async for chunk in r.chunks(BATCH_SIZE, end - start):
                await loop.run_in_executor(self.executor, hasher.update, chunk)

    async def _save_hash_state(self, session: UploadSession) -> bytes | None:
        """Save the hash at the session's new size; the state saved, None when there is
        none to save. The older states stay until the session ends: deleting one is a
        listing and a delete on S3, which the request would wait for, and a state is never
        read again once a later one is saved (a session's size never goes back below what a
        request stored)."""
        if session.hasher is None or session.hasher.algorithm != _CANONICAL:
            return None
        state = session.hasher.state()
        if state is None:
            return None
        await self.driver.put_content(
            paths.upload_hash_state(self.name, session.id, _CANONICAL, session.size), state
        )
        return state

    # -- requests ---------------------------------------------------------------------------

    async def append(
        self,
        upload_id: str,
        body: AsyncIterator[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append a request body; ``start`` (from Content-Range) must be the current size."""
        async with self.lock(upload_id):
            session = await self._open(upload_id, expected_size=start)
            token = self._claim(upload_id)
            try:
                if start is not None and start != session.size:
                    raise RangeInvalid(
                        {"expected": session.size, "got": start},
                        message="content range does not start at the end of the upload",
                    )
                received = await self._pump(session, body)
                if length is not None and received != length:
                    raise RangeInvalid(
                        {"expected": length, "got": received},
                        message="content range does not match the body",
                    )
            except BaseException:
                await session.writer.close()
                raise
            await session.writer.close()
            state = await self._save_hash_state(session)
            self._remember(session, state, token)
            return session.size

    async def complete(
        self, upload_id: str, digest: Digest, body: AsyncIterator[bytes] | None = None
    ) -> BlobInfo:
        """Receive the last bytes, verify them against ``digest`` and publish the blob."""
        async with self.lock(upload_id):
            session = await self._open(upload_id, digest.algorithm)
            self._claim(upload_id)
            if body is not None and not session.size and self.driver.write_in_place:
                await session.writer.close()
                size = await self._store_in_place(upload_id, digest, body)
            else:
                size = await self._store_session(session, digest, body)
            await self.blobs.link(digest)
            await self._remove(upload_id)
            return BlobInfo(digest, size)

    async def _store_session(
        self, session: UploadSession, digest: Digest, body: AsyncIterator[bytes] | None
    ) -> int:
        """Commit the session's data, verify it and move it into the store; its size."""
        try:
            if body is not None:
                await self._pump(session, body)
            await session.writer.commit()
        except BaseException:
            await session.writer.close()
            raise
        size = session.size
        if session.hasher is not None and session.hasher.algorithm == digest.algorithm:
            actual = session.hasher.hexdigest()
        else:
            rehash = new_hasher(digest.algorithm)
            await self._hash_stored(session.id, rehash, 0, size)
            actual = rehash.hexdigest()
        await self._verify(session.id, digest, actual)
        if await self.store.exists(digest):
            pass  # someone stored the same bytes: theirs are as good as ours
        else:
            await self.driver.move(
                paths.upload_data(self.name, session.id), paths.blob_data(digest)
            )
        return size

    async def _store_in_place(
        self, upload_id: str, digest: Digest, body: AsyncIterator[bytes]
    ) -> int:
        """Stream the whole blob to its path in the store, committed once verified; its size.
        A concurrent push of the same blob writes on its own (see ``write_in_place``)."""
        writer: FileWriter
        if await self.store.exists(digest):
            writer = _Discard()  # verified all the same: the client is told it was stored
        else:
            writer = await self.driver.writer(paths.blob_data(digest))
        hasher = new_hasher(digest.algorithm)
        try:
            size = await pump(body, writer, hasher, self.executor)
            await self._verify(upload_id, digest, hasher.hexdigest())
            await writer.commit()
        except BaseException:
            # What failed matters, not whether cleaning up after it did too.
            with contextlib.suppress(DriverError):
                await writer.cancel()
            raise
        return size

    async def _verify(self, upload_id: str, digest: Digest, actual: str) -> None:
        """DigestInvalid, ending the session, unless ``actual`` is the digest's hex."""
        if actual != digest.hex:
            await self._remove(upload_id)
            raise DigestInvalid(
                {"expected": str(digest), "computed": f"{digest.algorithm}:{actual}"}
            )

    async def cancel(self, upload_id: str) -> None:
        await self._require(upload_id)
        async with self.lock(upload_id):
            self._claim(upload_id)
            await self._remove(upload_id)

    async def _remove(self, upload_id: str) -> None:
        self._forget(upload_id)
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.upload_dir(self.name, upload_id))

    async def _pump(self, session: UploadSession, body: AsyncIterator[bytes]) -> int:
        """Hash and write the body in batches; returns the bytes received."""
        return await pump(body, session.writer, session.hasher, self.executor)


class _Discard(FileWriter):
    """Takes the body of a blob the store already holds: it is hashed, not stored again."""

    def __init__(self) -> None:
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._size += memoryview(data).nbytes

    async def close(self) -> None:
        pass

    async def cancel(self) -> None:
        pass

    async def commit(self) -> None:
        pass


def _discard(future: asyncio.Future[Hasher | None] | None) -> None:
    """Drop a read that is no longer wanted; what it finds or fails with is moot."""
    if future is not None:
        future.cancel()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())


def _memo_size(memo: SessionMemo) -> int:
    """Roughly the bytes a memory takes."""
    writer = memo.writer_state.memory_size if memo.writer_state is not None else 0
    return 256 + len(memo.hash_state) + writer


def _basename(path: str) -> str:
    return path.rpartition("/")[2]


def _is_offset(path: str) -> bool:
    return _basename(path).isdigit()
