"""Whole answers kept per worker, encoded, and served while the repository's change token holds.

A manifest GET or HEAD and a tags list ask the same few questions over and over (a tag, the
Accept header a client always sends, the same page), and the answer stays the same bytes until
the repository changes. Each answer is kept under the change token read before it was made
(``wharf.coherence.generations``), exactly as the registry's own caches are, so a tag moved or
deleted through any worker, or any instance sharing Redis, is never answered from here: the
token has changed by the time the next request reads it. A hit skips parsing the reference,
building the repository's services, negotiating and encoding.

Access control runs before the handlers, so before any of this is read. Only successful
answers are kept; errors are made anew each time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from wharf.api.http import Response, Send
from wharf.coherence.caches import TokenCache
from wharf.coherence.generations import Generations

__all__ = ["CachedResponse", "ResponseCaches", "answer"]

#: (repository, reference, Accept header as sent)
ManifestKey = tuple[str, str, str | None]
#: (repository, n, last), as given in the query
PageKey = tuple[str, str | None, str | None]
K = TypeVar("K", ManifestKey, PageKey)


class CachedResponse(Response):
    """A complete response whose headers are encoded once, for every request it answers."""

    __slots__ = ("raw_headers", "size")

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        super().__init__(status, body, headers)
        self.raw_headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers.items()
        ]
        #: What keeping it costs, roughly: the body and the headers.
        self.size = len(body) + sum(len(name) + len(value) for name, value in self.raw_headers)

    async def send(
        self,
        send: Send,
        *,
        head: bool,
        extra: list[tuple[bytes, bytes]],
        zero_copy: bool = False,
    ) -> None:
        start = [*self.raw_headers, *extra]
        await send({"type": "http.response.start", "status": self.status, "headers": start})
        await send({"type": "http.response.body", "body": b"" if head else self.body})


class ResponseCaches:
    """The answers one worker keeps. Without ``manifests`` (when pulls are reported to
    notification endpoints, each pull must go through the services that report it) manifest
    answers are made anew for every request."""

    def __init__(
        self,
        *,
        manifests: bool = True,
        max_entries: int = 4096,
        max_bytes: int = 16 << 20,
    ) -> None:
        self.manifests: TokenCache[ManifestKey, CachedResponse] | None = (
            TokenCache(max_entries, max_bytes) if manifests else None
        )
        self.tag_lists: TokenCache[PageKey, CachedResponse] = TokenCache(max_entries, max_bytes)


async def answer(
    cache: TokenCache[K, CachedResponse],
    generations: Generations,
    key: K,
    make: Callable[[], Awaitable[CachedResponse]],
) -> CachedResponse:
    """The answer kept for ``key`` (whose first part names the repository), else ``make``'s,
    kept from now on."""
    # Read before the answer is made: a change made meanwhile leaves it unused.
    token = generations.token(key[0])
    cached = cache.get(key, token)
    if cached is None:
        cached = await make()
        cache.put(key, token, cached, cached.size + sum(len(part or "") for part in key))
    return cached
