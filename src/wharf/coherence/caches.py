"""In-process caches of repository state, checked against change tokens on every read.

An entry is served only while the change token it was read under is still current (see
``generations``), so a tag moved or deleted through any worker is never served stale.
Immutable content (manifest bytes by digest) is cached without tokens, bounded by bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, TypeVar

from wharf.coherence.generations import Generations, Token

if TYPE_CHECKING:
    from wharf.registry.upload_session import SessionMemo

__all__ = ["ContentCache", "RegistryCache", "TokenCache"]

#: The bytes the memories of upload sessions may take per process (an S3 session's is ~100
#: bytes per part).
_UPLOAD_SESSION_BYTES = 16 << 20

K = TypeVar("K")
V = TypeVar("V")


class TokenCache(Generic[K, V]):
    """An LRU map whose entries are valid only under the token they were stored with, bounded
    by entries and, when ``max_bytes`` is given, by the sizes their values were put with."""

    def __init__(self, max_entries: int, max_bytes: int | None = None) -> None:
        self._entries: OrderedDict[K, tuple[Token, V, int]] = OrderedDict()
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: K, token: Token) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != token:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: K, token: Token, value: V, size: int = 0) -> None:
        if self._max_bytes is not None and size > self._max_bytes // 4:
            return  # one value must not push out most of the others
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[2]
        self._entries[key] = (token, value, size)
        self._bytes += size
        while len(self._entries) > self._max or (
            self._max_bytes is not None and self._bytes > self._max_bytes
        ):
            self._bytes -= self._entries.popitem(last=False)[1][2]

    def discard(self, key: K) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[2]


class ContentCache(Generic[K, V]):
    """An LRU map of immutable values bounded by their total size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._entries: OrderedDict[K, tuple[int, V]] = OrderedDict()
        self._max = max_bytes
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: K, size: int, value: V) -> None:
        if size > self._max // 4:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[0]
        self._entries[key] = (size, value)
        self._bytes += size
        while self._bytes > self._max:
            _, (dropped, _) = self._entries.popitem(last=False)
            self._bytes -= dropped

    def discard(self, key: K) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[0]


class RegistryCache:
    """The caches one worker keeps, all invalidated through one ``Generations``."""

    def __init__(
        self,
        generations: Generations,
        *,
        max_entries: int = 100_000,
        max_manifest_bytes: int = 64 << 20,
    ) -> None:
        self.generations = generations
        self.tags: TokenCache[tuple[str, str], str] = TokenCache(max_entries)
        self.links: TokenCache[tuple[str, str, str], bool] = TokenCache(max_entries)
        self.tag_lists: TokenCache[str, list[str]] = TokenCache(1024)
        self.catalog: TokenCache[str, list[str]] = TokenCache(1)
        self.manifests: ContentCache[str, tuple[bytes, str]] = ContentCache(max_manifest_bytes)
        #: What each upload session's last request in this process left (``uploads``):
        #: not checked against tokens, since a session's lease tells whether it is current.
        self.upload_sessions: ContentCache[str, SessionMemo] = ContentCache(_UPLOAD_SESSION_BYTES)
