"""The blocking face of :class:`~wharf.client.registry.AsyncRegistryClient`.

Each :class:`RegistryClient` runs the asynchronous client on an event loop of its own, in a
thread of its own, so it works from any code, an event loop of the caller's included.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from wharf.client.registry import AsyncRegistryClient, Manifest, Progress

__all__ = ["RegistryClient"]

_T = TypeVar("_T")


class RegistryClient:
    """A registry at ``url``; the options are :class:`AsyncRegistryClient`'s."""

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="wharf-client", daemon=True
        )
        self._thread.start()

        async def make() -> AsyncRegistryClient:
            return AsyncRegistryClient(url, **options)

        self.client = self._run(make())

    def _run(self, work: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def ping(self) -> bool:
        return self._run(self.client.ping())

    def catalog(self, page_size: int | None = None) -> list[str]:
        return self._run(self.client.catalog(page_size))

    def get_manifest(self, repository: str, reference: str, **options: Any) -> Manifest:
        return self._run(self.client.get_manifest(repository, reference, **options))

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        return self._run(self.client.manifest_digest(repository, reference))

    def put_manifest(
        self, repository: str, reference: str, body: bytes, media_type: str, **options: Any
    ) -> str:
        return self._run(
            self.client.put_manifest(repository, reference, body, media_type, **options)
        )

    def delete_manifest(self, repository: str, reference: str) -> None:
        self._run(self.client.delete_manifest(repository, reference))

    def tags(self, repository: str, page_size: int | None = None) -> list[str]:
        return self._run(self.client.tags(repository, page_size))

    def referrers(self, repository: str, digest: str, **options: Any) -> list[dict[str, Any]]:
        return self._run(self.client.referrers(repository, digest, **options))

    def blob_size(self, repository: str, digest: str) -> int | None:
        return self._run(self.client.blob_size(repository, digest))

    def get_blob(self, repository: str, digest: str) -> bytes:
        return self._run(self.client.get_blob(repository, digest))

    def iter_blob(self, repository: str, digest: str) -> Iterator[bytes]:
        pieces = self.client.iter_blob(repository, digest)
        try:
            while True:
                try:
                    yield self._run(anext(pieces))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            self._run(pieces.aclose())  # type: ignore[attr-defined]

    def download_blob(
        self, repository: str, digest: str, path: Path, *, progress: Progress | None = None
    ) -> int:
        return self._run(self.client.download_blob(repository, digest, path, progress=progress))

    def push_blob(
        self,
        repository: str,
        data: bytes | Path,
        digest: str | None = None,
        *,
        progress: Progress | None = None,
    ) -> str:
        return self._run(self.client.push_blob(repository, data, digest, progress=progress))

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        return self._run(self.client.mount_blob(repository, digest, source))

    def delete_blob(self, repository: str, digest: str) -> None:
        self._run(self.client.delete_blob(repository, digest))
