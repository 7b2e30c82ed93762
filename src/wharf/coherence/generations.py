"""Change tokens that tell every worker when its cached view of a repository went stale.

Each repository hashes to a slot holding a random 64-bit token; a write to the repository
stores a fresh token in its slot once the write is durable. A cache entry remembers the token
it was read under and is used only while the slot still holds it. Slot 0 is the registry-wide
epoch, changed by operations that touch every repository (garbage collection) and by catalog
changes; every token check includes it.

The slots live in a shared-memory file when several worker processes serve the same storage
(its path comes from the server launcher), in process memory otherwise. Writers store new
random values instead of incrementing, so no cross-process lock is needed: a reader that races
a writer at worst misses the cache once.
"""

from __future__ import annotations

import mmap
import os
import secrets
import struct
import zlib

__all__ = ["Generations", "Token", "UncachedGenerations"]

_SLOT = struct.Struct("<Q")
Token = tuple[int, int]


class Generations:
    def __init__(self, shared_path: str | None = None, slots: int = 8192) -> None:
        self._mmap: mmap.mmap | None = None
        if shared_path:
            fd = os.open(shared_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size < _SLOT.size * 2:
                    os.ftruncate(fd, slots * _SLOT.size)
                    size = slots * _SLOT.size
                self._mmap = mmap.mmap(fd, size)
            finally:
                os.close(fd)
            self._buffer: bytearray | mmap.mmap = self._mmap
        else:
            self._buffer = bytearray(slots * _SLOT.size)
        self._slots = len(self._buffer) // _SLOT.size

    def _slot(self, repository: str) -> int:
        return 1 + zlib.crc32(repository.encode()) % (self._slots - 1)

    def _read(self, slot: int) -> int:
        return int(_SLOT.unpack_from(self._buffer, slot * _SLOT.size)[0])

    def _write(self, slot: int) -> None:
        _SLOT.pack_into(self._buffer, slot * _SLOT.size, secrets.randbits(64))

    def token(self, repository: str) -> Token:
        return self._read(0), self._read(self._slot(repository))

    def epoch(self) -> int:
        return self._read(0)

    def changed(self, repository: str) -> None:
        """Call after a durable write to ``repository``."""
        self._write(self._slot(repository))

    def changed_everything(self) -> None:
        self._write(0)

    def close(self) -> None:
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None

    async def aclose(self) -> None:
        """Close, once the changes announced have reached every process they must."""
        self.close()


class UncachedGenerations(Generations):
    """Tokens that are never the same twice: nothing cached is ever served. For a process
    that cannot learn of other processes' writes."""

    def __init__(self) -> None:
        super().__init__(None, slots=2)

    def token(self, repository: str) -> Token:
        return secrets.randbits(64), 0

    def epoch(self) -> int:
        return secrets.randbits(64)
