"""Leases of the filesystem driver: a write lock, taken without waiting, on a hidden file
beside the leased one (``<name>#lock``).

Open file description locks (Linux's ``F_OFD_SETLK``) belong to the descriptor, not to the
process, so two requests of one worker exclude each other as two processes do; the kernel
drops them when the holder closes the file or dies, so a killed worker never leaves a session
locked. They are POSIX record locks to the NFS client, so processes on several machines
mounting one export exclude each other as well. Where they are missing, ``flock`` (also per
descriptor) stands in.

The lock is not on the leased file itself, which ``put_content`` replaces by a rename: a lock
on a replaced file would exclude nobody who opens the path afresh. The lock file is only ever
created, never replaced, and goes with its directory. The leased file must exist before the
lock is taken (so no lock file is made for a path that has none) and after (its holder deletes
it before releasing, and whoever got the lock after that finds it gone).
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

__all__ = ["LOCK_MARK", "FsLease", "lock_descriptor", "lock_file", "open_lease"]

#: Ends the name of a lock file (``#`` is outside the path grammar: listings skip it).
LOCK_MARK = "#lock"

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


def lock_file(full: str) -> str:
    directory, name = os.path.split(full)
    return os.path.join(directory, f"{name[:240]}{LOCK_MARK}")


def _take_lock(full: str) -> int | None:
    """A descriptor of ``full``'s lock file holding the lock; None when another holds it.
    FileNotFoundError when there is no file at ``full``, before or after locking."""
    os.stat(full)
    fd = os.open(lock_file(full), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if not lock_descriptor(fd):
            os.close(fd)
            return None
        os.stat(full)
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
