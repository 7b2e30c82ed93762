"""The hash of an upload session's bytes, kept in storage between requests.

Each request saves the hash state at the size it leaves (``hashstates/sha256/<offset>``, in
Go's binary form, so that Distribution can continue wharf's sessions and the other way round),
so the next request, in any process, reads one small file instead of the data. A request
saves its state while its writer stores the last bytes, and deletes it if either fails.
States stay until the session ends: deleting one is a listing and a delete on S3, which the
request would wait for, and a state is never read again once a later one is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from concurrent.futures import Executor

from wharf.hashing import Hasher, new_hasher, restore_hasher
from wharf.reference import RepositoryName
from wharf.registry.upload_pipeline import BATCH_SIZE
from wharf.storage import paths
from wharf.storage.driver import DriverError, InvalidOffset, Lease, PathNotFound, StorageDriver

__all__ = ["CANONICAL", "SessionHashes"]

log = logging.getLogger("wharf.uploads")

#: The algorithm whose state sessions keep (the one nearly every digest uses).
CANONICAL = "sha256"


class SessionHashes:
    """The saved hash states of one session."""

    def __init__(
        self, driver: StorageDriver, name: RepositoryName, upload_id: str, executor: Executor
    ) -> None:
        self.driver = driver
        self.name = name
        self.upload_id = upload_id
        self.executor = executor

    @staticmethod
    def restore(state: bytes) -> Hasher | None:
        return restore_hasher(CANONICAL, state)

    async def load(self, offset: int) -> Hasher | None:
        """The saved hash of the session's first ``offset`` bytes, if storage has it."""
        path = paths.upload_hash_state(self.name, self.upload_id, CANONICAL, offset)
        try:
            state = await self.driver.get_content(path)
        except PathNotFound:
            return None
        hasher = restore_hasher(CANONICAL, state)
        return hasher if hasher is not None and hasher.size == offset else None

    async def resume(self, size: int, algorithm: str, *, skip_saved: bool = False) -> Hasher | None:
        """The hash of the session's first ``size`` bytes, or None when it cannot be had
        before the data is committed (it is then computed from storage at completion).
        ``skip_saved``: the state at ``size`` was looked for already."""
        if not size:
            return new_hasher(algorithm)
        if not skip_saved:
            hasher = await self.load(size)
            if hasher is not None:
                return hasher
        # A request that ended before saving its state: continue from an earlier one.
        states_dir = paths.upload_hash_states_dir(self.name, self.upload_id, CANONICAL)
        try:
            listed = await self.driver.list(states_dir)
        except PathNotFound:
            listed = []
        offsets = sorted((int(_basename(p)) for p in listed if _is_offset(p)), reverse=True)
        hasher = None
        for offset in (o for o in offsets if o < size):
            hasher = await self.load(offset)
            if hasher is not None:
                break
        if hasher is None:
            hasher = new_hasher(CANONICAL)
        if hasher.size < size:
            # Catch up from storage where the driver can read uncommitted data.
            try:
                await self.hash_stored(hasher, hasher.size, size)
            except (PathNotFound, InvalidOffset):
                return None
        return hasher

    async def hash_stored(self, hasher: Hasher, start: int, end: int) -> None:
        """Feed ``hasher`` the session's stored bytes from ``start`` to ``end``."""
        loop = asyncio.get_running_loop()
        data = paths.upload_data(self.name, self.upload_id)
        async with await self.driver.reader(data, start) as reader:
            async for chunk in reader.chunks(BATCH_SIZE, end - start):
                await loop.run_in_executor(self.executor, hasher.update, chunk)

    async def save(self, hasher: Hasher | None, size: int, lease: Lease) -> bytes | None:
        """Save ``hasher``'s state at the session's new ``size``, under the session's lease;
        the state saved, None when there is none to save."""
        if hasher is None or hasher.algorithm != CANONICAL:
            return None
        state = hasher.state()
        if state is None:
            return None
        lease.check()
        path = paths.upload_hash_state(self.name, self.upload_id, CANONICAL, size)
        await self.driver.put_content(path, state)
        return state

    async def withdraw(self, saving: Awaitable[bytes | None], size: int) -> None:
        """Once ``saving`` (the state at ``size``) is done, delete that state: the request
        that saved it failed."""
        with contextlib.suppress(Exception):  # whatever became of it, it must not stay
            await saving
        path = paths.upload_hash_state(self.name, self.upload_id, CANONICAL, size)
        try:
            await self.driver.delete(path)
        except PathNotFound:
            pass
        except DriverError as error:
            # The request fails either way: said, since a later request that finds the
            # session's data at this size would read the state.
            log.warning("could not delete the hash state %s: %s", path, error)


def _basename(path: str) -> str:
    return path.rpartition("/")[2]


def _is_offset(path: str) -> bool:
    return _basename(path).isdigit()
