"""Blob push and pull through wharf on OpenStack Swift's native API, next to the store's floor.

    python -m bench.swift [--mib 256] [--rounds 3] [--out bench/STORES.md]

One Swift (from PyPI, with tempauth and memcached: tests/support/s3servers.py starts it), wharf
with ``storage.swift`` on a container of its own, and a plain HTTP client alone (httpx) on
another: the blob as 20 MiB segments (Distribution's and wharf's default ``chunksize``), 4 at
a time, under a DLO manifest, and one GET of the manifest, which Swift serves by joining the
segments as it does wharf's: see ``bench.stores``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tests.support.s3servers import start_swift
from tests.support.swift import SwiftNative

from bench.stores import Store, arguments, run

_SEGMENT = 20 << 20


def main() -> int:
    args = arguments(__doc__ or "")
    with (
        tempfile.TemporaryDirectory(prefix="wharf-bench-swift-", dir="/var/tmp") as workdir,
        start_swift(Path(workdir)) as server,
    ):
        swift = SwiftNative(server)
        floor_container = swift.create_container()
        token = swift.request("HEAD", "").request.headers["X-Auth-Token"]
        base = f"{swift.storage_url}/{floor_container}"

        def floor(data: bytes) -> tuple[float, float]:
            name = f"floor/{time.time_ns()}"
            view = memoryview(data)
            headers = {"X-Auth-Token": token}
            with httpx.Client(timeout=600, headers=headers) as client:

                def put(number: int) -> None:
                    start = number * _SEGMENT
                    chunk = bytes(view[start : start + _SEGMENT])
                    url = f"{base}/segments/{name}/{number + 1:016d}"
                    client.put(url, content=chunk).raise_for_status()

                started = time.perf_counter()
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(put, range((len(data) + _SEGMENT - 1) // _SEGMENT)))
                manifest = {"X-Object-Manifest": f"{floor_container}/segments/{name}"}
                client.put(f"{base}/{name}", content=b"", headers=manifest).raise_for_status()
                pushed = time.perf_counter() - started
                started = time.perf_counter()
                received = 0
                with client.stream("GET", f"{base}/{name}") as response:
                    response.raise_for_status()
                    for part in response.iter_raw(1 << 20):
                        received += len(part)
                pulled = time.perf_counter() - started
            assert received == len(data)
            return pushed, pulled

        store = Store(
            "swift on OpenStack Swift",
            {"swift": swift.parameters(swift.create_container())},
            floor,
            "httpx alone: 20 MiB segments 4 at a time under a DLO manifest, one GET",
        )
        run(store, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
