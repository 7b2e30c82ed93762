"""Blob push and pull through wharf on OpenStack Swift's native API, next to the store's floor.

    python -m bench.swift [--mib 256] [--rounds 3] [--out bench/STORES.md]

One Swift (from PyPI, with tempauth and memcached: tests/support/s3servers.py starts it), wharf
with ``storage.swift`` on a container of its own, and the store's SDK alone on another: the
floor is python-swiftclient (OpenStack's client library) uploading the blob from a file as a
Dynamic Large Object of 20 MiB segments (Distribution's and wharf's default ``chunksize``,
its default segment threads), and downloading it with ``get_object``: Swift serves it by
joining the segments as it does wharf's. Beside it, a plain HTTP client (httpx) making the
same transfers from memory, 4 segments at a time: the most any client gets from this store
here. See ``bench.stores``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from swiftclient.client import Connection
from swiftclient.service import SwiftService, SwiftUploadObject
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

        sdk_container = swift.create_container()
        options = {
            "auth": swift.auth_url, "user": server.access_key, "key": server.secret_key,
            "auth_version": "1.0", "segment_size": _SEGMENT, "use_slo": False,
            "segment_container": sdk_container,
        }  # fmt: skip
        source = Path(workdir) / "blob"

        def sdk(data: bytes) -> tuple[float, float]:
            name = f"floor/{time.time_ns()}"
            source.write_bytes(data)
            with SwiftService(options=options) as service:
                started = time.perf_counter()
                upload = SwiftUploadObject(str(source), object_name=name)
                results = list(service.upload(sdk_container, [upload], options=options))
                pushed = time.perf_counter() - started
            failed = [result for result in results if not result["success"]]
            assert not failed, failed[0]
            connection = Connection(
                authurl=swift.auth_url,
                user=server.access_key,
                key=server.secret_key,
                auth_version="1",
            )
            started = time.perf_counter()
            headers, body = connection.get_object(sdk_container, name, resp_chunk_size=1 << 20)
            received = sum(len(part) for part in body)
            pulled = time.perf_counter() - started
            connection.close()
            assert "x-object-manifest" in headers
            assert received == len(data)
            return pushed, pulled

        def plain(data: bytes) -> tuple[float, float]:
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
            sdk,
            "python-swiftclient, a DLO of 20 MiB segments uploaded from a file (its default "
            "threads), get_object",
            plain=plain,
            plain_name="a plain client (httpx, from memory, 4 segments at a time)",
        )
        run(store, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
