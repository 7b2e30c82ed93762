"""AWS's published address ranges (``ip-ranges.json``), for the ``cloudfront`` middleware's
``ipfilteredby``: clients inside them (in the chosen regions) fetch from S3 directly.

The ranges come from ``iprangesurl``: an http(s) URL, a ``file://`` URL or a local path. They
are loaded on the first redirect that needs them and refreshed every ``updatefrequency``
in the background, the old ranges answering meanwhile. Until a load succeeds nothing counts
as inside AWS (every client is sent to CloudFront), as in Distribution; a failed load is
logged and tried again after a minute (or ``updatefrequency`` when shorter).

Lookups are a binary search over the merged ranges, so one costs microseconds whatever the
size of the file (AWS publishes about 10,000 prefixes).
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import json
import logging
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["DEFAULT_IP_RANGES_URL", "AwsRanges", "RangeSet", "local_path", "parse_ranges"]

DEFAULT_IP_RANGES_URL = "https://ip-ranges.amazonaws.com/ip-ranges.json"
#: Bytes of ip-ranges.json read at most (AWS's is about 2 MB).
MAX_RANGES_BYTES = 64 << 20
_FETCH_TIMEOUT = 30.0
_RETRY_AFTER = 60.0

_log = logging.getLogger("wharf.storage.middleware.cloudfront")


def local_path(source: str) -> str | None:
    """The file ``source`` names (a path or a ``file://`` URL); None for an http(s) URL.
    ValueError for another scheme."""
    parsed = urllib.parse.urlsplit(source)
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise ValueError(f"no host in {source!r}")
        return None
    if parsed.scheme == "file":
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        raise ValueError(f"must be an http(s) or file URL or a path, not {source!r}")
    return source


@dataclass(frozen=True, slots=True)
class RangeSet:
    """Disjoint, sorted address intervals ``[start, end]`` per IP version."""

    starts4: Sequence[int]
    ends4: Sequence[int]
    starts6: Sequence[int]
    ends6: Sequence[int]

    def __len__(self) -> int:
        return len(self.starts4) + len(self.starts6)

    def contains(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.version == 4:
            starts, ends = self.starts4, self.ends4
        else:
            starts, ends = self.starts6, self.ends6
        value = int(address)
        index = bisect.bisect_right(starts, value) - 1
        return index >= 0 and value <= ends[index]


def _merge(
    networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> tuple[list[int], list[int]]:
    starts: list[int] = []
    ends: list[int] = []
    for start, end in sorted((int(n.network_address), int(n.broadcast_address)) for n in networks):
        if ends and start <= ends[-1] + 1:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def parse_ranges(document: bytes, regions: Sequence[str] = ()) -> RangeSet:
    """The prefixes of an ip-ranges.json document, of ``regions`` only when given (compared
    without case). ValueError when it is not such a document; a prefix that does not parse
    is skipped, as Distribution skips it."""
    try:
        data: Any = json.loads(document)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prefixes"), list):
        raise ValueError("not an AWS ip-ranges document (no prefixes list)")
    wanted = {region.lower() for region in regions}
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for entries, key in (
        (data["prefixes"], "ip_prefix"),
        (data.get("ipv6_prefixes"), "ipv6_prefix"),
    ):
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict):
                continue
            region = entry.get("region")
            if wanted and not (isinstance(region, str) and region.lower() in wanted):
                continue
            prefix = entry.get(key)
            if not isinstance(prefix, str):
                continue
            try:
                network = ipaddress.ip_network(prefix.strip(), strict=False)
            except ValueError:
                _log.warning("ip-ranges: skipping the prefix %r, which does not parse", prefix)
                continue
            if isinstance(network, ipaddress.IPv4Network):
                v4.append(network)
            else:
                v6.append(network)
    starts4, ends4 = _merge(v4)
    starts6, ends6 = _merge(v6)
    return RangeSet(starts4, ends4, starts6, ends6)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as file:
        data = file.read(MAX_RANGES_BYTES + 1)
    if len(data) > MAX_RANGES_BYTES:
        raise ValueError(f"{path} is larger than {MAX_RANGES_BYTES} bytes")
    return data


async def _fetch(url: str) -> bytes:
    async with (
        httpx.AsyncClient(timeout=_FETCH_TIMEOUT, follow_redirects=True) as client,
        client.stream("GET", url) as response,
    ):
        if response.status_code != 200:
            raise ValueError(f"GET {url}: HTTP {response.status_code}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_RANGES_BYTES:
                raise ValueError(f"GET {url}: larger than {MAX_RANGES_BYTES} bytes")
        return bytes(body)


class AwsRanges:
    """AWS's ranges from ``source`` (of ``regions`` only when given), kept fresh."""

    def __init__(self, source: str, regions: Sequence[str], every: float) -> None:
        self.source = source
        self.regions = tuple(regions)
        self.every = every
        self._path = local_path(source)
        self._ranges: RangeSet | None = None
        self._next = 0.0  # monotonic time of the next load
        self._first: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def contains(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether ``address`` is in the ranges; False while none are loaded."""
        if self._ranges is None:
            # The first load is awaited (by every request meeting it), so that the first
            # clients are told the same as the later ones.
            if self._first is None or (self._first.done() and time.monotonic() >= self._next):
                self._first = asyncio.ensure_future(self._load())
            await asyncio.shield(self._first)
        elif time.monotonic() >= self._next and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.ensure_future(self._load())
        ranges = self._ranges
        return ranges is not None and ranges.contains(address)

    async def _load(self) -> None:
        try:
            if self._path is not None:
                document = await asyncio.to_thread(_read_file, self._path)
            else:
                document = await _fetch(self.source)
            ranges = await asyncio.to_thread(parse_ranges, document, self.regions)
        except (OSError, ValueError, httpx.HTTPError) as exc:
            retry = min(self.every, _RETRY_AFTER)
            self._next = time.monotonic() + retry
            kept = (
                "keeping the ranges loaded before"
                if self._ranges
                else "sending every client to CloudFront"
            )
            _log.warning(
                "cloudfront: cannot load AWS ip ranges from %s (%s); %s, trying again in %.0f s",
                self.source,
                exc,
                kept,
                retry,
            )
            return
        self._ranges = ranges
        self._next = time.monotonic() + self.every
        _log.debug("cloudfront: %d AWS ip ranges loaded from %s", len(ranges), self.source)

    async def close(self) -> None:
        for task in (self._first, self._refresh):
            if task is not None and not task.done():
                task.cancel()
