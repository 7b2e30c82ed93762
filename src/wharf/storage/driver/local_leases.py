"""Leases for a store that cannot make them exclusive itself: lock files of this machine.

An S3 store without atomic conditional writes (OpenStack Swift) lets two concurrent creates
of one object both succeed, so numbered turns would not exclude. Its leases are then locks on
files in this machine's shared memory, one per leased path, named after the storage and the
path: every process of this machine excludes the others, and a process that dies releases at
once (see ``filesystem.lease``); processes of other machines are not excluded, so the driver
says ``exclusive_leases = False`` and whoever relies on leases verifies what storage holds.
Each lock file counts the turns taken in its first eight bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import struct
import tempfile
from collections.abc import Awaitable, Callable

from wharf.storage.driver.base import Lease, LeaseBusy, PathNotFound
from wharf.storage.driver.filesystem.lease import lock_descriptor

__all__ = ["LocalLeases", "machine_directory"]

_TURN = struct.Struct("<Q")


def machine_directory() -> str:
    """Shared memory when the machine has it (``/tmp`` may be private to a service), else
    the temporary directory."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def _take(full: str) -> tuple[int, int] | None:
    """(descriptor holding the lock, turn taken); None when another holds it."""
    os.makedirs(os.path.dirname(full), exist_ok=True)
    while True:
        fd = os.open(full, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if not lock_descriptor(fd):
                os.close(fd)
                return None
            try:
                current = os.stat(full)
            except FileNotFoundError:
                current = None
            locked = os.fstat(fd)
            if current is None or (current.st_dev, current.st_ino) != (
                locked.st_dev,
                locked.st_ino,
            ):
                os.close(fd)  # its holder removed it: lock the one at the path now
                continue
            raw = os.pread(fd, _TURN.size, 0)
            turn = (_TURN.unpack(raw)[0] if len(raw) == _TURN.size else 0) + 1
            os.pwrite(fd, _TURN.pack(turn), 0)
            return fd, turn
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise


class _LocalLease(Lease):
    __slots__ = ("_fd", "_full", "_turn")

    def __init__(self, full: str, fd: int, turn: int) -> None:
        self._full = full
        self._fd: int | None = fd
        self._turn = turn

    @property
    def turn(self) -> int | None:
        return self._turn

    async def release(self, *, deleted: bool = False) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if deleted:  # while locked: whoever waits for it locks the new one at the path
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._full)
        os.close(fd)


class LocalLeases:
    """The leases of one storage, ``identity`` naming it the same in every process."""

    def __init__(self, identity: str) -> None:
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.directory = os.path.join(machine_directory(), f"wharf-leases-{key}")

    def _file(self, path: str) -> str:
        return os.path.join(self.directory, hashlib.sha256(path.encode()).hexdigest())

    async def lease(self, path: str, exists: Callable[[], Awaitable[bool]]) -> Lease:
        """The lease of ``path``, whose file ``exists`` tells whether it is there."""
        full = self._file(path)
        future = asyncio.get_running_loop().run_in_executor(None, _take, full)
        try:
            taken = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_close_taken)
            raise
        if taken is None:
            raise LeaseBusy(path)
        lease = _LocalLease(full, *taken)
        try:
            present = await exists()
        except BaseException:
            await lease.release()
            raise
        if not present:
            await lease.release(deleted=True)
            raise PathNotFound(path)
        return lease

    def purge(self, before: float) -> None:
        """Remove the lock files of sessions gone by other means (a killed process, another
        machine's purge) that nobody holds and nobody took since ``before``."""
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.directory):
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < before:
                        _remove_idle(entry.path)


def _remove_idle(full: str) -> None:
    fd = os.open(full, os.O_RDWR | os.O_CLOEXEC)
    try:
        if lock_descriptor(fd):  # removed while locked, as a release does
            os.unlink(full)
    finally:
        os.close(fd)


def _close_taken(future: asyncio.Future[tuple[int, int] | None]) -> None:
    if not future.cancelled() and future.exception() is None:
        taken = future.result()
        if taken is not None:
            os.close(taken[0])
