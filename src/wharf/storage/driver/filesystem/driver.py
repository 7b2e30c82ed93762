"""The filesystem driver: driver paths as files and directories under a root directory."""

from __future__ import annotations

import asyncio
import bisect
import builtins
import heapq
import itertools
import os
import re
import stat as stat_module
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

from wharf.storage.driver.base import (
    FILES_A_BATCH,
    DriverError,
    FileInfo,
    FileReader,
    FileWriter,
    InvalidOffset,
    Lease,
    Listings,
    PathNotFound,
    StorageDriver,
)
from wharf.storage.driver.filesystem import tree
from wharf.storage.driver.filesystem.files import (
    MISSING,
)
from wharf.storage.driver.filesystem.lease import open_lease
from wharf.storage.driver.filesystem.reader import FsReader, open_reader
from wharf.storage.driver.filesystem.writer import DIRECT_IO, FsWriter, open_writer

__all__ = ["DEFAULT_MAX_THREADS", "DEFAULT_ROOT_DIRECTORY", "FilesystemDriver"]

DEFAULT_ROOT_DIRECTORY = "/var/lib/registry"
# Threads mostly wait on the disk rather than hold the GIL, so more threads than cores keep
# slow fsyncs from stalling reads. On two cores, 16 threads took 8 concurrent uploads at
# 1.3-1.5 GB/s and 2,000-2,700 fsynced link files/s; 8 was slower, 32 and 64 no faster.
DEFAULT_MAX_THREADS = 16

_T = TypeVar("_T")

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")


def _is_name(name: str) -> bool:
    """Whether a directory entry is a driver path component (not another writer's temporary
    file): most are letters and digits only (digests, tags), told without the regex."""
    return name.isascii() and (name.isalnum() or _NAME_RE.fullmatch(name) is not None)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC)


def _get(full: str) -> bytes:
    try:
        with open(full, "rb", buffering=0) as file:
            return file.readall()
    except IsADirectoryError as exc:
        raise FileNotFoundError(full) from exc


def _each(call: Callable[[str], _T], fulls: list[str]) -> list[_T | None]:
    """``call`` of each path in one thread call, None where there is nothing."""
    found: list[_T | None] = []
    for full in fulls:
        try:
            found.append(call(full))
        except MISSING:
            found.append(None)
    return found


def _stat(full: str) -> os.stat_result:
    return os.stat(full)


def _sorted_entries(full: str) -> list[tuple[str, os.DirEntry[str]]]:
    """A directory's entries by name, read whole and closed; [] when it is missing."""
    try:
        with os.scandir(full) as iterator:
            entries = [(e.name, e) for e in iterator if _is_name(e.name)]
    except MISSING:
        return []
    entries.sort()
    return entries


def _tree_below(
    full: str,
    prefix: str,
    skip: Callable[[str], bool] | None = None,
    *,
    directories: bool = False,
) -> Iterator[FileInfo]:
    """What lies below ``full`` depth first, by name, as paths under ``prefix``: its files,
    and its directories too when ``directories`` is set, but nothing below those ``skip``
    accepts. A directory's type comes from its entry, so only what is yielded costs a
    ``stat``. No directory stays open between two entries: a walk given up part way, or
    advanced from one thread call to the next, holds none. (A stack, not recursion: each
    entry is then one generator deep, however deep the tree.)"""
    stack = [(prefix, iter(_sorted_entries(full)))]
    while stack:
        prefix, entries = stack[-1]
        for name, entry in entries:
            path = prefix + name
            try:
                if entry.is_dir():
                    if directories:
                        yield FileInfo(path, 0, _mtime(entry.stat()), True)
                    if skip is None or not skip(path):
                        stack.append((path + "/", iter(_sorted_entries(entry.path))))
                        break
                    continue
                st = entry.stat()
            except FileNotFoundError:  # deleted meanwhile, or a dangling symlink
                continue
            yield FileInfo(path, st.st_size, _mtime(st), False)
        else:
            stack.pop()


def _take(files: Iterator[FileInfo], count: int) -> list[FileInfo]:
    return list(itertools.islice(files, count))


def _unsorted_names(full: str) -> list[str]:
    return [name for name in os.listdir(full) if _is_name(name)]


def _names(full: str) -> list[str]:
    return sorted(_unsorted_names(full))


#: Directories whose sorted listing ``list_page`` keeps, and the fewest names worth keeping.
_LISTINGS_KEPT = 8
_LISTING_WORTH_KEEPING = 1000
#: A listing is kept only when the directory was last changed this long before, since a
#: change within the timestamps' granularity could leave the time as it was: a few clock
#: ticks where timestamps have nanoseconds, two seconds where they are whole seconds.
_SETTLED_NS = 50_000_000
_SETTLED_WHOLE_SECONDS_NS = 2_000_000_000

_KEEPING = threading.Lock()

#: (inode, mtime) of a directory, and its names, sorted.
_Listing = tuple[tuple[int, int], list[str]]


def _settled(st: os.stat_result) -> bool:
    """Whether a directory last changed long enough ago that a change now would show in its
    modification time (a clock tick, or two seconds where times are whole seconds)."""
    whole = st.st_mtime_ns % 1_000_000_000 == 0
    window = _SETTLED_WHOLE_SECONDS_NS if whole else _SETTLED_NS
    return time.time_ns() - st.st_mtime_ns > window


def _listing_version(full: str) -> tuple[int, int] | None:
    try:
        st = os.stat(full)
    except MISSING:
        return None
    return (st.st_ino, st.st_mtime_ns) if _settled(st) else None


def _page_of(
    full: str, after: str | None, limit: int, kept: OrderedDict[str, _Listing]
) -> tuple[list[str], bool] | None:
    """One page of a directory's sorted names; None when it has none. The sorted names of a
    large directory are kept while its inode and modification time stay the same (adding or
    removing an entry changes the time)."""
    try:
        st = os.stat(full)
        # Judged now, not after the listing: a change in the same clock tick as the time
        # read here, made while the names are read, leaves that time as it was.
        settled = _settled(st)
        key = (st.st_ino, st.st_mtime_ns)
        hit = kept.get(full)
        if hit is not None and hit[0] == key:
            names = hit[1]
        else:
            unsorted = _unsorted_names(full)
            if len(unsorted) < _LISTING_WORTH_KEEPING or not settled:
                return _selected_page(unsorted, after, limit)
            names = sorted(unsorted)
            with _KEEPING:  # pages of several directories are read in threads at once
                kept[full] = (key, names)
                while len(kept) > _LISTINGS_KEPT:
                    kept.popitem(last=False)
    except MISSING:
        return None
    if not names:
        return None
    start = bisect.bisect_right(names, after) if after else 0
    return names[start : start + limit], start + limit < len(names)


def _selected_page(
    names: list[str], after: str | None, limit: int
) -> tuple[list[str], bool] | None:
    """The page of unsorted ``names`` without sorting them all: a directory just changed
    (a tag pushed) is read again for the next page anyway, and picking the page's names is a
    tenth of a sort's time (a million tags: 0.04 s against 0.4)."""
    if not names:
        return None
    candidates = names if after is None else [name for name in names if name > after]
    page = heapq.nsmallest(limit + 1, candidates)
    return page[:limit], len(page) > limit


class FilesystemDriver(StorageDriver):
    name = "filesystem"

    def __init__(
        self,
        rootdirectory: str = DEFAULT_ROOT_DIRECTORY,
        *,
        maxthreads: int = DEFAULT_MAX_THREADS,
        directwrites: bool = True,
    ) -> None:
        # Absolute now, so that a later chdir cannot move the registry's data.
        self.root = os.path.abspath(rootdirectory)
        self._prefix = self.root.rstrip("/")
        self._executor = ThreadPoolExecutor(maxthreads, thread_name_prefix="wharf-fs")
        self.direct_writes = directwrites and DIRECT_IO
        self._closed = False
        #: Sorted listings of large directories, for ``list_page``.
        self._listings: OrderedDict[str, _Listing] = OrderedDict()

    def full_path(self, path: str) -> str:
        """The file that holds driver path ``path``."""
        return self._prefix + path if path != "/" else self.root

    def _run(self, function: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
        if self._closed:
            raise DriverError("driver is closed")
        return asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def get_content(self, path: str) -> bytes:
        try:
            return await self._run(_get, self.full_path(path))
        except MISSING as exc:
            raise PathNotFound(path) from exc

    async def get_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return await self._run(_each, _get, [self.full_path(path) for path in paths])

    async def put_content(self, path: str, content: bytes) -> None:
        await self._run(tree.put, self.full_path(path), content, self.root)

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        if offset < 0:
            raise InvalidOffset(path, offset)
        try:
            fd, size = await self._run(open_reader, self.full_path(path), offset)
        except MISSING as exc:
            raise PathNotFound(path) from exc
        if offset > size:
            os.close(fd)
            raise InvalidOffset(path, offset)
        return FsReader(self, path, fd, offset)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        full = self.full_path(path)
        try:
            fd, direct_fd, size = await self._run(open_writer, full, append, self.direct_writes)
        except MISSING as exc:
            if not append:
                raise
            raise PathNotFound(path) from exc
        return FsWriter(self, path, full, fd, direct_fd, size)

    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        return await open_lease(self, path)

    async def stat(self, path: str) -> FileInfo:
        try:
            st = await self._run(_stat, self.full_path(path))
        except MISSING as exc:
            raise PathNotFound(path) from exc
        if stat_module.S_ISDIR(st.st_mode):
            return FileInfo(path, 0, _mtime(st), True)
        return FileInfo(path, st.st_size, _mtime(st), False)

    async def list(self, path: str) -> list[str]:
        children = (await self.list_many([path]))[0]
        if children is None:
            raise PathNotFound(path)
        return children

    async def list_many(self, directories: Sequence[str]) -> Listings:
        fulls = [self.full_path(directory) for directory in directories]
        listed = await self._run(_each, _names, fulls)
        for index, (directory, names) in enumerate(zip(directories, listed, strict=True)):
            if names is not None:
                prefix = "/" if directory == "/" else directory + "/"
                listed[index] = [prefix + name for name in names]
            elif directory == "/":
                listed[index] = []  # a registry that has stored nothing yet
        return listed

    async def listing_version(self, path: str) -> tuple[int, int] | None:
        """Its inode and modification time: adding or removing an entry changes the time."""
        return await self._run(_listing_version, self.full_path(path))

    async def list_page(
        self, path: str, after: str | None, limit: int
    ) -> tuple[builtins.list[str], bool]:
        """One directory read and sort in a thread, kept for a large directory until it
        changes (``_page_of``); full paths are made for the page only."""
        page = await self._run(_page_of, self.full_path(path), after, limit, self._listings)
        if page is None:
            if path == "/":
                return [], False
            raise PathNotFound(path)
        prefix = "/" if path == "/" else path + "/"
        return [prefix + name for name in page[0]], page[1]

    async def move(self, source: str, destination: str) -> None:
        try:
            await self._run(
                tree.move, self.full_path(source), self.full_path(destination), self.root
            )
        except MISSING as exc:
            raise PathNotFound(source) from exc

    async def delete(self, path: str) -> None:
        try:
            await self._run(tree.delete, self.full_path(path))
        except MISSING as exc:
            raise PathNotFound(path) from exc

    async def purge_uncommitted(self, before: datetime, *, dry_run: bool = False) -> Sequence[str]:
        """Leftovers of writes and deletes that a killed process interrupted."""
        return await self._run(tree.leftovers, self.root, before.timestamp(), dry_run)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        async for batch in self._batches(path, None, directories=True):
            for info in batch:
                yield info

    async def walk_files(
        self, path: str, skip: Callable[[str], bool] | None = None
    ) -> AsyncIterator[builtins.list[FileInfo]]:
        async for batch in self._batches(path, skip, directories=False):
            yield batch

    async def _batches(
        self, path: str, skip: Callable[[str], bool] | None, *, directories: bool
    ) -> AsyncIterator[builtins.list[FileInfo]]:
        # One generator over the tree advanced a batch a thread call: a thread hand-off per
        # directory costs more than reading it (a repository is a dozen directories).
        prefix = "/" if path == "/" else path + "/"
        below = _tree_below(self.full_path(path), prefix, skip, directories=directories)
        while batch := await self._run(_take, below, FILES_A_BATCH):
            yield batch

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Joining the threads blocks until their calls finish, so wait for them off the loop.
        await asyncio.to_thread(self._executor.shutdown, wait=True)
