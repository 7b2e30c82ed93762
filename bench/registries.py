"""The two registries under test, started side by side on the same kind of storage.

Both are the test suite's own launchers (tests/support): wharf is ``python -m wharf serve
CONFIG`` with one worker per core by default, Debian's docker-registry 2.8.2 is
``docker-registry serve CONFIG`` without AWS_CA_BUNDLE in its environment (it panics at start
when that is set). Each gets storage of its own: a filesystem root in the benchmark's data
directory, or a bucket of one S3 server. Delete enabled, upload purging off (neither walks its
storage in the background), logging at info with the access log off, and on S3 no redirects:
both registries serve blob bytes themselves, so a pull measures the registry, not S3 alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from tests.support.reference_registry import ReferenceRegistry
from tests.support.server import WharfServer

from bench.layout import remove_blob_data
from bench.memory import children, command_line
from wharf.reference import Digest
from wharf.storage import paths

if TYPE_CHECKING:
    from tests.support.s3servers import S3Server

__all__ = [
    "REFERENCE",
    "WHARF",
    "FilesystemStore",
    "S3Store",
    "Store",
    "Target",
    "start_reference",
    "start_wharf",
]

WHARF = "wharf"
REFERENCE = "docker-registry"

_NO_PURGING = {"uploadpurging": {"enabled": False}}
#: docker-registry's settings in tests/support: info level, access log off (Distribution
#: still logs one "response completed" line per request at info; wharf logs none).
_LOG = {"level": "info", "accesslog": {"disabled": True}}


class Store(Protocol):
    """Where a registry keeps its data, as the harness needs to know it."""

    @property
    def kind(self) -> str: ...

    def driver(self) -> dict[str, Any]:
        """The storage section's driver entry and its extra settings."""

    def remove_blob(self, digest: str) -> None:
        """Delete a blob's bytes behind the registry's back (after the API unlinked it)."""


@dataclass(frozen=True)
class FilesystemStore:
    root: Path
    kind: str = "filesystem"

    def driver(self) -> dict[str, Any]:
        return {"filesystem": {"rootdirectory": str(self.root)}}

    def remove_blob(self, digest: str) -> None:
        remove_blob_data(self.root, digest)


@dataclass(frozen=True)
class S3Store:
    server: S3Server
    bucket: str
    kind: str = "s3"

    def driver(self) -> dict[str, Any]:
        return {"s3": self.server.parameters(self.bucket), "redirect": {"disable": True}}

    def remove_blob(self, digest: str) -> None:
        key = paths.blob_data(Digest.parse(digest)).lstrip("/")
        self.server.client().delete_object(Bucket=self.bucket, Key=key)


@dataclass
class Target:
    """A running registry as the measurements see it."""

    name: str
    server: WharfServer | ReferenceRegistry
    store: Store

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host

    def log(self) -> str:
        return self.server.log()

    @property
    def main_pid(self) -> int:
        process = self.server.process
        if process is None:
            raise RuntimeError(f"{self.name} is not running")
        return process.pid

    def serving_pids(self) -> list[int]:
        """The processes that serve requests: wharf's workers, or docker-registry itself."""
        if self.name == WHARF:
            workers = [pid for pid in children(self.main_pid) if not _is_resource_tracker(pid)]
            return workers or [self.main_pid]
        return [self.main_pid]

    def all_pids(self) -> list[int]:
        return sorted({self.main_pid, *self.serving_pids()})

    def stop(self) -> None:
        self.server.cleanup()


def _is_resource_tracker(pid: int) -> bool:
    """multiprocessing's helper that uvicorn's spawned workers bring along: serves nothing."""
    return b"multiprocessing.resource_tracker" in command_line(pid)


def start_wharf(store: Store, workers: int) -> Target:
    """wharf on ``store``; ``workers`` 0 means one per core."""
    server = WharfServer(
        storage={**store.driver(), "maintenance": _NO_PURGING},
        workers=workers,
        config={"log": _LOG},
    )
    server.start()
    return Target(WHARF, server, store)


def start_reference(store: Store) -> Target:
    if isinstance(store, FilesystemStore):
        server = ReferenceRegistry(root=store.root)
    else:
        # The launcher writes filesystem storage; swap in the store's driver before start.
        server = ReferenceRegistry()
        document = yaml.safe_load(server.config_path.read_text())
        del document["storage"]["filesystem"]
        document["storage"].update(store.driver())
        server.config_path.write_text(yaml.safe_dump(document))
    server.start()
    return Target(REFERENCE, server, store)
