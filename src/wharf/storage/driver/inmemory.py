"""A storage driver that keeps everything in process memory: for tests and throwaway registries.

Files live in a tree of dicts whose leaves are ``_File`` records; directories are implicit and
disappear with their last file. A writer appends to an uncommitted buffer kept beside the tree,
so, as on S3, bytes become visible at their path only on ``commit``; until then a later
``writer(path, append=True)`` continues the buffer, and ``delete`` of the path or of a directory
above it discards it.

Every method runs without awaiting, so each is atomic with respect to the event loop; the
driver must be used from one event loop only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Union

from wharf.storage.driver.base import (
    DriverError,
    FileInfo,
    FileReader,
    FileWriter,
    InvalidOffset,
    Lease,
    LeaseBusy,
    PathNotFound,
    StorageDriver,
)

__all__ = ["InMemoryDriver"]


@dataclass(frozen=True, slots=True)
class _File:
    data: bytes
    modified: datetime


# A directory maps child names to files or directories.
_Dir = dict[str, Union["_Dir", _File]]


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent or "/", name


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


class InMemoryDriver(StorageDriver):
    name = "inmemory"

    def __init__(self) -> None:
        self._root: _Dir = {}
        self._pending: dict[str, bytearray] = {}
        #: Turns taken of each file's lease, and the files whose lease is held.
        self._turns: dict[str, int] = {}
        self._leased: set[str] = set()

    # -- tree helpers --------------------------------------------------------------------------

    def _lookup(self, path: str) -> _Dir | _File | None:
        node: _Dir | _File = self._root
        for part in _parts(path):
            if not isinstance(node, dict):
                return None
            child = node.get(part)
            if child is None:
                return None
            node = child
        return node

    def _file(self, path: str) -> _File:
        node = self._lookup(path)
        if not isinstance(node, _File):
            raise PathNotFound(path)
        return node

    def _directory(self, path: str, *, create: bool) -> _Dir:
        """The directory at ``path``, made on the way when ``create``; DriverError when a file
        is in the way (PathNotFound when the directory is missing and not ``create``)."""
        node = self._root
        for part in _parts(path):
            child = node.get(part)
            if child is None:
                if not create:
                    raise PathNotFound(path)
                child = node[part] = {}
            elif isinstance(child, _File):
                raise DriverError(f"not a directory: {path}", path=path)
            node = child
        return node

    def _check_parent_free(self, path: str) -> None:
        """DriverError when a file sits where a directory above ``path`` must go."""
        node: _Dir | _File | None = self._root
        for part in _parts(_split(path)[0]):
            if not isinstance(node, dict):
                break
            node = node.get(part)
            if isinstance(node, _File):
                raise DriverError(f"not a directory above {path}", path=path)

    def _prune(self, path: str) -> None:
        """Remove the empty directories from ``path`` upwards: directories are implicit."""
        parts = _parts(path)
        while parts:
            parent = self._root if len(parts) == 1 else self._lookup("/" + "/".join(parts[:-1]))
            if not isinstance(parent, dict):
                return
            node = parent.get(parts[-1])
            if not isinstance(node, dict) or node:
                return
            del parent[parts[-1]]
            parts.pop()

    def _store(self, path: str, data: bytes) -> None:
        parent_path, name = _split(path)
        parent = self._directory(parent_path, create=True)
        if isinstance(parent.get(name), dict):
            raise DriverError(f"is a directory: {path}", path=path)
        parent[name] = _File(data, datetime.now(UTC))

    def _discard_pending(self, path: str) -> bool:
        below = path + "/"
        doomed = [key for key in self._pending if key == path or key.startswith(below)]
        for key in doomed:
            del self._pending[key]
        for key in [key for key in self._turns if key == path or key.startswith(below)]:
            del self._turns[key]
        return bool(doomed)

    # -- the contract --------------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        return self._file(path).data

    async def put_content(self, path: str, content: bytes) -> None:
        self._store(path, bytes(content))

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        data = self._file(path).data
        if offset < 0 or offset > len(data):
            raise InvalidOffset(path, offset)
        return _MemoryReader(data, offset)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        self._check_parent_free(path)
        if not append:
            buffer = bytearray()
        elif (pending := self._pending.get(path)) is not None:
            buffer = pending
        else:
            # Continuing a committed file starts a new buffer from its bytes, as appending to
            # the file on disk would.
            buffer = bytearray(self._file(path).data)
        self._pending[path] = buffer
        return _MemoryWriter(self, path, buffer)

    async def lease(self, path: str, *, after: int | None = None) -> Lease:
        self._file(path)
        if path in self._leased:
            raise LeaseBusy(path)
        turn = self._turns.get(path, 0) + 1
        self._turns[path] = turn
        self._leased.add(path)
        return _MemoryLease(self, path, turn)

    async def stat(self, path: str) -> FileInfo:
        node = self._lookup(path)
        if node is None:
            raise PathNotFound(path)
        if isinstance(node, _File):
            return FileInfo(path, len(node.data), node.modified, False)
        if not node and path != "/":
            raise PathNotFound(path)
        return FileInfo(path, 0, None, True)

    async def list(self, path: str) -> list[str]:
        node = self._lookup(path)
        if not isinstance(node, dict) or (not node and path != "/"):
            raise PathNotFound(path)
        prefix = "/" if path == "/" else path + "/"
        return [prefix + name for name in sorted(node)]

    async def move(self, source: str, destination: str) -> None:
        node = self._lookup(source)
        if node is None or source == "/":
            raise PathNotFound(source)
        if source == destination:
            return
        if destination.startswith(source + "/"):
            raise DriverError(f"cannot move {source} below itself", path=destination)
        parent_path, name = _split(destination)
        parent = self._directory(parent_path, create=True)
        if isinstance(parent.get(name), dict) and isinstance(node, _File):
            raise DriverError(f"is a directory: {destination}", path=destination)
        # Insert before removing, so that pruning the source's empty parents cannot detach
        # a directory the destination was just put in.
        parent[name] = node
        source_parent_path, source_name = _split(source)
        source_parent = self._lookup(source_parent_path)
        if isinstance(source_parent, dict):
            del source_parent[source_name]
        self._prune(source_parent_path)

    async def delete(self, path: str) -> None:
        parent_path, name = _split(path)
        parent = self._lookup(parent_path)
        removed = isinstance(parent, dict) and parent.pop(name, None) is not None
        discarded = self._discard_pending(path)
        if not (removed or discarded):
            raise PathNotFound(path)
        if removed:
            self._prune(parent_path)


class _MemoryLease(Lease):
    __slots__ = ("_driver", "_path", "_turn")

    def __init__(self, driver: InMemoryDriver, path: str, turn: int) -> None:
        self._driver = driver
        self._path: str | None = path
        self._turn = turn

    @property
    def turn(self) -> int | None:
        return self._turn

    async def release(self, *, deleted: bool = False) -> None:
        path, self._path = self._path, None
        if path is not None:
            self._driver._leased.discard(path)


class _MemoryReader(FileReader):
    def __init__(self, data: bytes, offset: int) -> None:
        self._data = data
        self._position = offset

    async def read(self, size: int) -> bytes:
        start = self._position
        end = len(self._data) if size < 0 else min(start + size, len(self._data))
        self._position = end
        return self._data[start:end]

    async def close(self) -> None:
        self._data = b""


class _MemoryWriter(FileWriter):
    def __init__(self, driver: InMemoryDriver, path: str, buffer: bytearray) -> None:
        self._driver = driver
        self._path = path
        self._buffer = buffer
        self._state = "open"

    @property
    def size(self) -> int:
        return len(self._buffer)

    def _check_open(self) -> None:
        if self._state != "open":
            raise DriverError(f"writer already {self._state}: {self._path}", path=self._path)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        self._buffer += data

    async def close(self) -> None:
        if self._state == "open":
            self._state = "closed"

    async def cancel(self) -> None:
        self._check_open()
        self._state = "cancelled"
        if self._driver._pending.get(self._path) is self._buffer:
            del self._driver._pending[self._path]
        self._buffer = bytearray()

    async def commit(self) -> None:
        self._check_open()
        self._driver._store(self._path, bytes(self._buffer))
        self._state = "committed"
        if self._driver._pending.get(self._path) is self._buffer:
            del self._driver._pending[self._path]
