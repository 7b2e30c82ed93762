"""Reading a file of the filesystem driver: from the page cache on the event loop when the
bytes are there, from the disk in the driver's threads with a window read ahead when not."""

from __future__ import annotations

import asyncio
import os
import stat as stat_module
from typing import TYPE_CHECKING

from wharf.storage.driver.base import DriverError, FileReader
from wharf.storage.driver.filesystem.files import close_when_done

if TYPE_CHECKING:
    from wharf.storage.driver.filesystem.driver import FilesystemDriver

__all__ = ["FsReader", "open_reader"]

_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
_probe = bytearray(1)
# How far ahead of a cold read the kernel is asked to fetch.
_READ_AHEAD = 8 << 20


def _advise_will_need(fd: int, offset: int, length: int) -> None:
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)


def _cached(fd: int, offset: int) -> bool:
    """Whether the byte at ``offset`` is in the page cache: a read that must not block."""
    if not _NOWAIT:
        return False
    try:
        return os.preadv(fd, [_probe], offset, _NOWAIT) == 1
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: a filesystem without the flag
        return False


def open_reader(full: str, offset: int) -> tuple[int, int]:
    fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
    st = os.fstat(fd)
    if stat_module.S_ISDIR(st.st_mode):
        os.close(fd)
        raise FileNotFoundError(full)
    return fd, st.st_size


def _pread_rest(fd: int, position: int) -> bytes:
    return os.pread(fd, max(os.fstat(fd).st_size - position, 0), position)


class FsReader(FileReader):
    def __init__(self, driver: FilesystemDriver, path: str, fd: int, offset: int) -> None:
        self._driver = driver
        self._path = path
        self._fd: int | None = fd
        self._position = offset
        self._reading: asyncio.Future[bytes] | None = None
        # Where the kernel was last asked to read ahead to; 0 until a read finds the disk.
        self._ahead_end = 0
        self._advising: asyncio.Future[None] | None = None

    async def read(self, size: int) -> bytes:
        if self._fd is None:
            raise DriverError(f"reader closed: {self._path}", path=self._path)
        if size == 0:
            return b""
        if size > 0 and _cached(self._fd, self._position + size - 1):
            # Data already in the page cache is copied faster on the event loop than after
            # a hop to a thread and back (measured: 2.3 vs 0.9-1.8 GB/s with 4 streams).
            data = os.pread(self._fd, size, self._position)
            self._position += len(data)
            self._read_ahead()
            return data
        if size < 0:
            self._reading = self._driver._run(_pread_rest, self._fd, self._position)
        else:
            if not self._ahead_end:
                self._ahead_end = self._position + size
            self._read_ahead()
            self._reading = self._driver._run(os.pread, self._fd, size, self._position)
        data = await asyncio.shield(self._reading)
        self._reading = None
        self._position += len(data)
        return data

    def local_file(self) -> tuple[int, int] | None:
        if self._fd is None or self._reading is not None:
            return None
        return self._fd, self._position

    def _read_ahead(self) -> None:
        """Keep the kernel reading the next window of a file that was found on the disk.

        Its own readahead is 128 KiB here, so each cold read waited for the disk and the
        response waited for each read; a window ahead lets the rest come from the cache.
        """
        if not self._ahead_end or self._advising is not None or self._fd is None:
            return
        if self._ahead_end - self._position > _READ_AHEAD // 2:
            return
        start = max(self._ahead_end, self._position)
        self._ahead_end = start + _READ_AHEAD
        self._advising = self._driver._run(_advise_will_need, self._fd, start, _READ_AHEAD)
        self._advising.add_done_callback(self._advised)

    def _advised(self, done: asyncio.Future[None]) -> None:
        if self._advising is done:
            self._advising = None
        if not done.cancelled():
            done.exception()  # a hint that failed changes nothing: the reads still read

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        busy = [f for f in (self._reading, self._advising) if f is not None]
        if busy:
            # A read was cancelled, or a hint is on its way: their threads may still use
            # the descriptor.
            close_when_done(asyncio.gather(*busy, return_exceptions=True), fd)
        else:
            # Closing a descriptor opened read-only never waits on the disk: no thread hop.
            os.close(fd)
