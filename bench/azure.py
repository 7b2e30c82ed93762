"""Blob push and pull through wharf on Azure storage (Azurite), next to the store's floor.

    python -m bench.azure [--mib 256] [--rounds 3] [--out bench/STORES.md]

One Azurite (``.ci/run`` installs it; tests/support/azurite.py starts it), wharf with
``storage.azure`` on a container of its own, and the Azure SDK alone (``upload_blob`` and
``download_blob``, 4 at a time, as the SDK does by default for large blobs) on another: see
``bench.stores``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.support.azurite import start_azurite

from bench.stores import Store, arguments, run


def main() -> int:
    args = arguments(__doc__ or "")
    with (
        tempfile.TemporaryDirectory(prefix="wharf-bench-azure-") as workdir,
        start_azurite(Path(workdir)) as server,
    ):
        floor_container = server.create_container()

        def floor(data: bytes) -> tuple[float, float]:
            blob = server.service().get_blob_client(floor_container, f"floor/{time.time_ns()}")
            started = time.perf_counter()
            blob.upload_blob(data, overwrite=True, max_concurrency=4)
            pushed = time.perf_counter() - started
            started = time.perf_counter()
            received = blob.download_blob(max_concurrency=4).readall()
            pulled = time.perf_counter() - started
            assert len(received) == len(data)
            return pushed, pulled

        store = Store(
            "azure on Azurite",
            {"azure": server.parameters(server.create_container())},
            floor,
            "azure-storage-blob, upload_blob and download_blob with max_concurrency=4",
        )
        run(store, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
