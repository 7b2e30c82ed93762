"""Leases of the filesystem driver: a write lock on the file itself, taken without waiting.

Open file description locks (Linux's ``F_OFD_SETLK``) belong to the descriptor, not to the
process, so two requests of one worker exclude each other as two processes do; the kernel
drops them when the holder closes the file or dies, so a killed worker never leaves a session
locked. They are POSIX record locks to the NFS client, so processes on several machines
mounting one export exclude each other as well. Where they are missing, ``flock`` (also per
descriptor) stands in.

A lock on an unlinked file excludes nobody who opens the path afresh, so once locked the
path must still name the locked file: the holder of a session's lease deletes the file before
it releases, and whoever locked the old file after that finds it gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
from typing import TYPE_CHECKING

from wharf.storage.driver.base import Lease, LeaseBusy, PathNotFound
from wharf.storage.driver.filesystem.files import MISSING

if TYPE_CHECKING:
    from wharf.storage.driver.filesystem.driver import FilesystemDriver

__all__ = ["FsLease", "lock_descriptor", "open_lease"]

_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)
# struct flock: l_type, l_whence, l_start, l_len (0: to the end, whatever it grows to),
# l_pid (0, as OFD locks require).
_WHOLE_FILE_WRITE_LOCK = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
_BUSY = (errno.EAGAIN, errno.EACCES)


def lock_descriptor(fd: int) -> bool:
    """Lock the file open at ``fd`` without waiting; whether it was taken (False: another
    descriptor holds it)."""
    try:
        if _OFD_SETLK is not None:
            fcntl.fcntl(fd, _OFD_SETLK, _WHOLE_FILE_WRITE_LOCK)
        else:  # pragma: no cover - platforms without OFD locks
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


def _take_lock(full: str) -> int | None:
    """A descriptor of ``full`` holding its lock; None when another holds it.
    FileNotFoundError when there is no file, or no longer the one that was locked."""
    fd = os.open(full, os.O_RDWR | os.O_CLOEXEC)
    try:
        if not lock_descriptor(fd):
            os.close(fd)
            return None
        locked = os.fstat(fd)
        current = os.stat(full)
        if (locked.st_dev, locked.st_ino) != (current.st_dev, current.st_ino):
            raise FileNotFoundError(errno.ENOENT, "replaced while locking", full)
    except BaseException:
        os.close(fd)
        raise
    return fd


class FsLease(Lease):
    __slots__ = ("_driver", "_fd")

    def __init__(self, driver: FilesystemDriver, fd: int) -> None:
        self._driver = driver
        self._fd: int | None = fd

    @property
    def turn(self) -> int | None:
        return None

    async def release(self, *, deleted: bool = False) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # drops the lock; a close never blocks on a file opened to lock


def _close_taken(future: asyncio.Future[int | None]) -> None:
    if not future.cancelled() and future.exception() is None:
        fd = future.result()
        if fd is not None:
            os.close(fd)


async def open_lease(driver: FilesystemDriver, path: str) -> FsLease:
    future = driver._run(_take_lock, driver.full_path(path))
    try:
        # Shielded: a request cancelled while the thread locks must not leave the lock
        # held by a descriptor nobody will close.
        fd = await asyncio.shield(future)
    except MISSING as exc:
        raise PathNotFound(path) from exc
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            future.add_done_callback(_close_taken)
        raise
    if fd is None:
        raise LeaseBusy(path)
    return FsLease(driver, fd)
