"""The two registries under test, started side by side on the same kind of storage.

Both are the test suite's own launchers (tests/support): wharf is ``python -m wharf serve
CONFIG`` with one worker per core by default, Debian's docker-registry 2.8.2 is
``docker-registry serve CONFIG`` without AWS_CA_BUNDLE in its environment (it panics at start
when that is set). Each gets a filesystem root of its own in the benchmark's data
directory, delete enabled, upload purging off (neither walks its storage in the background),
logging at info with the access log off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.reference_registry import ReferenceRegistry
from tests.support.server import WharfServer

from bench.memory import children

__all__ = ["REFERENCE", "WHARF", "Target", "start_reference", "start_wharf"]

WHARF = "wharf"
REFERENCE = "docker-registry"

_NO_PURGING = {"uploadpurging": {"enabled": False}}
#: docker-registry's settings in tests/support: info level, access log off (Distribution
#: still logs one "response completed" line per request at info; wharf logs none).
_LOG = {"level": "info", "accesslog": {"disabled": True}}


@dataclass
class Target:
    """A running registry as the measurements see it."""

    name: str
    server: WharfServer | ReferenceRegistry
    root: Path

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
            return children(self.main_pid) or [self.main_pid]
        return [self.main_pid]

    def all_pids(self) -> list[int]:
        return sorted({self.main_pid, *self.serving_pids()})

    def stop(self) -> None:
        self.server.cleanup()


def start_wharf(root: Path, workers: int) -> Target:
    """wharf on ``root``; ``workers`` 0 means one per core."""
    server = WharfServer(
        storage={
            "filesystem": {"rootdirectory": str(root)},
            "maintenance": _NO_PURGING,
        },
        workers=workers,
        config={"log": _LOG},
    )
    server.start()
    return Target(WHARF, server, root)


def start_reference(root: Path) -> Target:
    server = ReferenceRegistry(root=root)
    server.start()
    return Target(REFERENCE, server, root)
