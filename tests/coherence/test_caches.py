"""Token caches: valid only under their token, bounded by entries and by bytes."""

from __future__ import annotations

from wharf.coherence.caches import TokenCache


def test_an_entry_is_served_only_under_its_token() -> None:
    cache: TokenCache[str, str] = TokenCache(10)
    cache.put("a", (1, 1), "old")
    assert cache.get("a", (1, 1)) == "old"
    assert cache.get("a", (1, 2)) is None
    assert cache.get("a", (2, 1)) is None
    assert (cache.hits, cache.misses) == (1, 2)


def test_least_recently_used_go_first_by_count() -> None:
    cache: TokenCache[str, int] = TokenCache(2)
    cache.put("a", (0, 0), 1)
    cache.put("b", (0, 0), 2)
    assert cache.get("a", (0, 0)) == 1
    cache.put("c", (0, 0), 3)
    assert cache.get("b", (0, 0)) is None
    assert cache.get("a", (0, 0)) == 1
    assert cache.get("c", (0, 0)) == 3


def test_bounded_by_bytes() -> None:
    cache: TokenCache[str, bytes] = TokenCache(100, max_bytes=1000)
    for name in "abcd":
        cache.put(name, (0, 0), b"", size=250)
    assert cache.get("a", (0, 0)) == b""  # now the most recent
    cache.put("e", (0, 0), b"", size=250)
    assert cache.get("b", (0, 0)) is None
    assert all(cache.get(name, (0, 0)) == b"" for name in "acde")
    cache.put("big", (0, 0), b"", size=251)  # over a quarter: not kept, nothing dropped
    assert cache.get("big", (0, 0)) is None
    assert all(cache.get(name, (0, 0)) == b"" for name in "acde")
    cache.put("a", (0, 1), b"", size=100)  # replacing frees the old size: 850 kept
    cache.discard("c")  # 600
    cache.put("f", (0, 0), b"", size=250)  # 850
    cache.put("g", (0, 0), b"", size=250)  # 1100: the oldest, d, goes
    assert cache.get("d", (0, 0)) is None
    assert all(cache.get(name, (0, 0)) == b"" for name in "efg")
    assert cache.get("a", (0, 1)) == b""
