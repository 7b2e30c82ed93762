"""The storage driver contract: a dozen async methods over opaque paths.

Paths are absolute, slash-separated and made of ``[A-Za-z0-9._-]`` components; ``/`` is the
root. Directories are implicit: a path is a directory when some file lies below it.

Driver errors:

    DriverError
     ├── PathNotFound       nothing at that path
     ├── InvalidPath        a path outside the grammar
     ├── InvalidOffset      a read or append offset past the end or negative
     ├── LeaseBusy          another holder has the lease of a file
     ├── LeaseLost          a lease may have passed to another holder
     └── UnsupportedMethod  the driver cannot do this (e.g. redirect URLs)
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

__all__ = [
    "FILES_A_BATCH",
    "DriverError",
    "FileInfo",
    "FileReader",
    "FileWriter",
    "InvalidOffset",
    "InvalidPath",
    "Lease",
    "LeaseBusy",
    "LeaseLost",
    "Listings",
    "PathNotFound",
    "ResumeState",
    "StorageDriver",
    "UnsupportedMethod",
    "check_path",
]

_PATH_RE = re.compile(r"(?:/[A-Za-z0-9._-]+)+")


#: Bytes the default ``concatenate`` reads at a time.
_CONCATENATE_CHUNK = 1 << 20
#: Directories the default ``list_many`` lists at once.
_LIST_MANY_AT_ONCE = 8
#: Files the default ``get_many`` reads at once.
_GET_MANY_AT_ONCE = 16
#: Files a batch of ``walk_files`` holds at most.
FILES_A_BATCH = 4096
#: ``list_many``'s answer: each directory's children, or None where there are none.
Listings = list[list[str] | None]

_T = TypeVar("_T")


async def _each_at_most(
    at_once: int, call: Callable[[str], Awaitable[_T]], paths: Sequence[str]
) -> list[_T | None]:
    """``call`` of each path, in order, ``at_once`` running at a time (so that a batch does
    not take every connection of a network store); None where it finds nothing."""
    slots = asyncio.Semaphore(at_once)

    async def one(path: str) -> _T | None:
        async with slots:
            try:
                return await call(path)
            except PathNotFound:
                return None

    return list(await asyncio.gather(*(one(path) for path in paths)))


class DriverError(Exception):
    """Base of every error a storage driver raises."""

    def __init__(self, message: str, *, path: str = "", driver: str = "") -> None:
        self.path = path
        self.driver = driver
        super().__init__(f"{driver}: {message}" if driver else message)


class PathNotFound(DriverError):
    def __init__(self, path: str, *, driver: str = "") -> None:
        super().__init__(f"path not found: {path}", path=path, driver=driver)


class InvalidPath(DriverError):
    def __init__(self, path: str, *, driver: str = "") -> None:
        super().__init__(f"invalid path: {path[:300]!r}", path=path, driver=driver)


class InvalidOffset(DriverError):
    def __init__(self, path: str, offset: int, *, driver: str = "") -> None:
        self.offset = offset
        super().__init__(f"invalid offset {offset} for {path}", path=path, driver=driver)


class LeaseBusy(DriverError):
    def __init__(self, path: str, *, driver: str = "") -> None:
        super().__init__(f"lease held by another: {path}", path=path, driver=driver)


class LeaseLost(DriverError):
    def __init__(self, path: str, *, driver: str = "") -> None:
        super().__init__(f"lease lost: {path}", path=path, driver=driver)


class UnsupportedMethod(DriverError):
    pass


def check_path(path: str, *, allow_root: bool = False) -> str:
    """Raise InvalidPath unless ``path`` follows the driver path grammar."""
    if allow_root and path == "/":
        return path
    if not _PATH_RE.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise InvalidPath(path)
    return path


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    modified: datetime | None
    is_dir: bool
    #: The store's entity tag as a listing gives it, unquoted, or the content's hex MD5
    #: where the listing has that instead (GCS, Azure). On S3 and Swift the ETag is the hex
    #: MD5 of a file written in one request, but not of a multipart or encrypted one: fit to
    #: confirm content one expects, never to learn it.
    etag: str | None = None


class FileReader(ABC):
    """A sequential reader from an offset; ``read`` returns b"" at the end."""

    @abstractmethod
    async def read(self, size: int) -> bytes: ...

    @abstractmethod
    async def close(self) -> None: ...

    def local_file(self) -> tuple[int, int] | None:
        """The OS file descriptor this reader reads and the position of its next byte, for a
        caller that sends the bytes without reading them (``sendfile``); None when they are
        not in a local file. The descriptor stays the reader's: it is valid until ``close``,
        and the caller neither reads through the reader nor closes the descriptor meanwhile."""
        return None

    async def __aenter__(self) -> FileReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def chunks(self, chunk_size: int, length: int | None = None) -> AsyncIterator[bytes]:
        """Up to ``length`` bytes (all when None) in chunks of at most ``chunk_size``."""
        remaining = length
        while remaining is None or remaining > 0:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            data = await self.read(want)
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data


class ResumeState(ABC):
    """What a closed writer knows of its file, for its own driver's ``resume_writer``.

    Opaque to everyone else, who may only keep it, and needs to know for how much."""

    __slots__ = ()

    @property
    @abstractmethod
    def memory_size(self) -> int:
        """Roughly the bytes that keeping this state takes."""


class FileWriter(ABC):
    """Appends to a file. Written bytes become visible at ``path`` after ``commit``; ``close``
    without commit keeps them for a later writer opened with ``append=True``."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes in the file, including those of earlier writers appended to."""

    @abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; the caller may reuse its buffer as soon as this returns."""

    @abstractmethod
    async def close(self) -> None:
        """Flush and release; the file stays resumable."""

    @abstractmethod
    async def cancel(self) -> None:
        """Discard everything written to this file."""

    @abstractmethod
    async def commit(self) -> None:
        """Make the written bytes durable and final; no write may follow."""

    def announce(self, size: int) -> None:  # noqa: B027 - a hint most writers do not need
        """The next ``size`` bytes written arrive now, as one stream (a request body of known
        length): a writer may start storing them before they are all there. A hint only:
        writing fewer or more bytes than announced stays correct."""

    @property
    def served_size(self) -> int | None:
        """After ``commit``: the size the commit itself saw storage serve at the path,
        where it looks (reads that may lag a write); None elsewhere, and then ``stat`` is
        the way to know."""
        return None

    def resume_state(self) -> ResumeState | None:
        """After ``close``: what this writer knows of what storage holds for the file, for
        ``StorageDriver.resume_writer`` to continue without reading storage again. None
        when the driver has nothing to save (continuing there is cheap) or the writer did
        not close cleanly."""
        return None


class Lease(ABC):
    """The exclusive hold of one file's lease (``StorageDriver.lease``), until ``release``."""

    __slots__ = ()

    @property
    @abstractmethod
    def turn(self) -> int | None:
        """How many times the file's lease has been taken, this time included, where the
        driver counts them (None elsewhere). Whoever held turn ``n`` and now holds ``n + 1``
        knows that nobody held the lease in between."""

    def check(self) -> None:  # noqa: B027 - leases the storage enforces cannot be lost
        """Raise LeaseLost when the lease may have passed to another holder (it expired
        unrenewed): whatever the holder was about to write must not be written."""

    @abstractmethod
    async def release(self, *, deleted: bool = False) -> None:
        """Give the lease up; ``deleted``: the holder deleted the file, so there is nothing
        left to release it on. Releasing twice does nothing."""

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class StorageDriver(ABC):
    """The contract every storage backend implements."""

    name: str = "base"
    #: Whether a file whose content is known up front is better written where it will stay
    #: than written elsewhere and moved: ``move`` copies the data, a writer's bytes stay
    #: invisible at its path until ``commit`` (``cancel`` leaves nothing there), and writers
    #: opened on one path with ``append=False`` do not disturb each other, each ``commit``
    #: replacing the file whole. True on S3, where a move is a server-side copy.
    write_in_place: bool = False
    #: Whether the storage itself makes ``lease`` exclusive across machines. Where it cannot
    #: (an S3 store without atomic conditional writes), leases exclude the processes of one
    #: machine only, and whoever relies on them must verify what storage holds instead.
    exclusive_leases: bool = True

    @abstractmethod
    async def get_content(self, path: str) -> bytes:
        """The whole content of a small file."""

    @abstractmethod
    async def put_content(self, path: str, content: bytes) -> None:
        """Replace the file at ``path`` atomically: readers see the old or the new content."""

    @abstractmethod
    async def reader(self, path: str, offset: int = 0) -> FileReader:
        """A reader from ``offset``; InvalidOffset past the end."""

    @abstractmethod
    async def writer(self, path: str, append: bool = False) -> FileWriter:
        """A writer to ``path``, continuing the uncommitted file when ``append``
        (PathNotFound when there is nothing to continue)."""

    async def resume_writer(self, path: str, state: ResumeState | None) -> FileWriter:
        """A writer continuing the uncommitted file from a ``resume_state`` of the last
        writer that closed it. The caller vouches that nothing changed the file since; a
        state this driver did not make, or None, opens it as ``writer(path, append=True)``
        does."""
        del state
        return await self.writer(path, append=True)

    @abstractmethod
    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        """The exclusive lease of the file at ``path``, across every process and machine
        sharing this storage: LeaseBusy while another holds it, PathNotFound when there is
        no file (also once its holder deleted it: a file that is gone can never be leased).
        It does not wait: the caller decides what a busy file means. A holder that dies
        without releasing loses it, at once where the storage can tell (file locks) and
        otherwise when it expires unrenewed (the driver renews it while it is held).
        ``after``: the ``turn`` the caller last held, a hint that lets a driver counting
        turns take the next one without looking first."""

    @abstractmethod
    async def stat(self, path: str) -> FileInfo: ...

    @abstractmethod
    async def list(self, path: str) -> list[str]:
        """Full paths of the direct children of a directory; PathNotFound when empty."""

    async def listing_version(self, path: str) -> tuple[int, int] | None:
        """A value that changes whenever a name directly below ``path`` is added or removed
        (and may change for other reasons, never staying through such a change); None when
        the driver cannot tell without listing (most stores), or not yet (a change may be too
        recent to show). Lets a caller keep what it made of a listing, and still see another
        writer's changes."""
        return None

    async def get_many(self, paths: Sequence[str]) -> builtins.list[bytes | None]:
        """``get_content`` of each small file, in order, None where there is none. Drivers
        whose reads are blocking calls read the whole batch in one call; here a few at a
        time, as ``list_many`` lists."""
        return await _each_at_most(_GET_MANY_AT_ONCE, self.get_content, paths)

    async def list_many(self, directories: Sequence[str]) -> Listings:
        """``list`` of each directory, in order, None where ``list`` finds nothing. Drivers
        whose ``list`` is a blocking call list the whole batch in one call; here a few at a
        time, so that a batch does not take every connection of a network store."""
        return await _each_at_most(_LIST_MANY_AT_ONCE, self.list, directories)

    async def list_page(
        self, path: str, after: str | None, limit: int
    ) -> tuple[builtins.list[str], bool]:
        """Up to ``limit`` direct children of a directory (full paths) whose names come after
        ``after`` (from the first when None), and whether more follow; PathNotFound when the
        directory is empty (a driver listing from ``after`` may answer no children instead).
        Names come in lexical order, except on a driver that lists in its store's key order,
        where a directory's name sorts as the name followed by ``/`` (S3: ``v1-rc`` and
        ``v1.0`` come before ``v1``); ``after`` is placed in the same order, so that pages
        following one another never skip or repeat a child. Here the whole directory is
        listed; a driver whose store lists from a given key (S3's StartAfter) reads only the
        page."""
        children = sorted(await self.list(path))
        names = [child.rpartition("/")[2] for child in children]
        start = bisect.bisect_right(names, after) if after else 0
        return children[start : start + limit], start + limit < len(children)

    @abstractmethod
    async def move(self, source: str, destination: str) -> None:
        """Move a file, replacing ``destination``."""

    async def concatenate(self, sources: Sequence[str], destination: str) -> None:
        """Write the committed files ``sources``, one after the other, as the committed file
        ``destination`` (replacing it). Here their bytes stream through a writer; a driver
        that can join files inside the storage (S3: part copies) does that instead."""
        writer = await self.writer(destination)
        try:
            for source in sources:
                async with await self.reader(source) as reader:
                    async for chunk in reader.chunks(_CONCATENATE_CHUNK):
                        await writer.write(chunk)
            await writer.commit()
        except BaseException:
            with contextlib.suppress(DriverError):
                await writer.cancel()
            raise

    @abstractmethod
    async def delete(self, path: str) -> None:
        """Delete a file or a whole directory tree; PathNotFound when nothing is there."""

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file and directory below ``path``, depth first, in lexical order."""
        try:
            children = sorted(await self.list(path))
        except PathNotFound:
            return
        for child in children:
            try:
                info = await self.stat(child)
            except PathNotFound:
                continue
            yield info
            if info.is_dir:
                async for below in self.walk(child):
                    yield below

    async def walk_files(
        self, path: str, skip: Callable[[str], bool] | None = None
    ) -> AsyncIterator[builtins.list[FileInfo]]:
        """The files of ``walk`` (no directories) in its order, in batches of at most
        ``FILES_A_BATCH``: for a caller that reads a whole tree and needs only its files,
        which a driver may find without a call per directory or a thread hand-off per file.
        A driver that reads directory by directory leaves out those whose path ``skip``
        accepts; one that lists whole trees (object stores) may still give their files."""
        batch: builtins.list[FileInfo] = []
        async for info in self.walk(path):
            if not info.is_dir:
                batch.append(info)
                if len(batch) == FILES_A_BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        """A URL a client may fetch the file from directly, or None to serve it ourselves."""
        return None

    async def purge_uncommitted(self, before: datetime, *, dry_run: bool = False) -> Sequence[str]:
        """Discard uncommitted data started before ``before`` that the driver keeps outside
        its files, where deleting upload directories cannot reach it (S3: multipart
        uploads); the paths it belonged to. Drivers that keep uncommitted bytes in the files
        themselves have nothing to purge."""
        return []

    async def close(self) -> None:  # noqa: B027 - optional: most drivers hold nothing
        """Release connections and threads."""
