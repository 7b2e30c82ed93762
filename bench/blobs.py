"""Blob pushes and pulls, timed: shared by the registry measurements and the client ceiling."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from bench.client import Client, sha256_digest

__all__ = ["BlobSource", "pull_rate", "push_rate"]


class BlobSource:
    """Random bytes, and a fresh blob of them on every ``next``: the first 16 bytes carry a
    counter, so no push ever finds its blob already stored."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(os.urandom(size))
        self.counter = 0

    def next(self, size: int) -> tuple[memoryview, str]:
        """A new blob of ``size`` bytes and its digest (hashed here, outside any timing)."""
        self.counter += 1
        stamp = f"{os.getpid():08d}{self.counter:08d}".encode()
        self.data[: len(stamp)] = stamp
        view = memoryview(self.data)[:size]
        return view, sha256_digest(view)


def push_rate(
    client: Client,
    repository: str,
    source: BlobSource,
    *,
    size: int,
    chunk: int | None,
    count: int,
    cleanup: Callable[[str], None] | None = None,
) -> float:
    """MB/s (10^6 bytes) over ``count`` pushes of new ``size``-byte blobs, monolithic when
    ``chunk`` is None. Dirty pages of earlier writes are flushed (``sync``) before each push,
    outside the timing, so one registry's writeback never lands in the other's sample."""
    elapsed = 0.0
    for _ in range(count):
        view, digest = source.next(size)
        os.sync()
        started = time.perf_counter()
        if chunk is None:
            client.push_monolithic(repository, view, digest)
        else:
            client.push_chunked(repository, view, digest, chunk)
        elapsed += time.perf_counter() - started
        if cleanup is not None:
            cleanup(digest)
    return size * count / elapsed / 1e6


def pull_rate(
    url: str, repository: str, digest: str, *, size: int, streams: int, total: int
) -> tuple[float, int]:
    """MB/s over ``streams`` concurrent connections pulling the blob until about ``total``
    bytes (whole blobs, at least one per stream) have arrived; and the bytes pulled."""
    repeats = max(1, round(total / (size * streams)))
    clients = [Client(url) for _ in range(streams)]
    for client in clients:  # connect and warm up outside the timing
        client.request("HEAD", f"/v2/{repository}/blobs/{digest}")
    barrier = threading.Barrier(streams + 1)
    errors: list[BaseException] = []

    def stream(client: Client) -> None:
        barrier.wait()
        try:
            for _ in range(repeats):
                if client.pull(repository, digest) != size:
                    raise RuntimeError(f"short pull of {digest}")
        except BaseException as error:  # reported by the caller
            errors.append(error)

    threads = [threading.Thread(target=stream, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    if errors:
        raise errors[0]
    pulled = size * repeats * streams
    return pulled / elapsed / 1e6, pulled
