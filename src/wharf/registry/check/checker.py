"""What one check shares between its phases: the blob ledger, the report, and second looks.

Every finding is looked at twice. The registry may be serving while the check runs, and its
writes come in steps (a tag's index entry, then its current link; a manifest's revision link,
then its referrer entry; a blob's directory, then its data), so a state seen between two steps
is not a problem. A look that finds something is queued and run again, from storage, once
``recheck_delay`` has passed since the first; only what the second look still finds is
reported, and repaired at once when asked. A step of a concurrent write takes milliseconds;
the delay is a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import Enum

from wharf.config.validation import ValidationConfig
from wharf.reference import Digest, RepositoryName
from wharf.registry.check.report import CheckReport, Kind, Problem
from wharf.registry.gc.progress import Progress
from wharf.storage import paths
from wharf.storage.driver import DriverError, PathNotFound, StorageDriver

__all__ = [
    "RECHECK_DELAY",
    "BlobState",
    "Checker",
    "Finding",
    "LeftAlone",
    "Look",
    "Repair",
    "Suspects",
]

#: Seconds between the first look at a finding and the second.
RECHECK_DELAY = 1.0

#: Repairs the finding and says what it did; raises LeftAlone to change nothing.
Repair = Callable[[], Awaitable[str]]


class LeftAlone(Exception):
    """A repair that decided, on a closer look, to change nothing; the message says why."""


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    path: str
    detail: str
    #: None: no repair is safe; ``why_not`` says why.
    repair: Repair | None = None
    why_not: str = "no safe repair"


#: Looks at one thing in storage, now; what is wrong with it (usually nothing).
Look = Callable[[], Awaitable[Sequence[Finding]]]


class BlobState(Enum):
    PRESENT = "present"
    MISSING = "missing"
    CORRUPT = "corrupt"


def _key(digest: Digest) -> bytes:
    # 32 bytes for sha256, 64 for sha512: the length tells them apart, and a million of them
    # take ~80 MB less than as Digests.
    return bytes.fromhex(digest.hex)


class Checker:
    def __init__(
        self,
        driver: StorageDriver,
        *,
        repair: bool,
        executor: Executor,
        progress: Progress,
        on_change: Callable[[str], None] | None,
        on_change_everything: Callable[[], None] | None,
        recheck_delay: float,
        concurrency: int,
        validation: ValidationConfig | None = None,
        mirrored: Callable[[RepositoryName], bool] | None = None,
    ) -> None:
        self.driver = driver
        #: Which references of a manifest the registry requires (the others may be absent).
        self.validation = validation or ValidationConfig()
        #: Whether a repository mirrors an upstream: it holds what was pulled, no more.
        self.mirrored = mirrored or (lambda name: False)
        self.repair = repair
        self.executor = executor
        self.progress = progress
        self.on_change = on_change
        self.on_change_everything = on_change_everything
        self.recheck_delay = recheck_delay
        self.concurrency = concurrency
        self.report = CheckReport(repair=repair)
        self.stats = self.report.stats
        self._verified: set[bytes] = set()
        #: Blobs found corrupt -> whether the repair removed them.
        self._corrupt: dict[bytes, bool] = {}

    # -- the blob ledger, filled by the blob phase, read by the repository phase -------------

    def verified(self, digest: Digest) -> None:
        self._verified.add(_key(digest))

    def corrupt(self, digest: Digest, *, removed: bool) -> None:
        self._corrupt[_key(digest)] = removed

    async def blob_state(self, digest: Digest) -> BlobState:
        """Whether the store holds ``digest``'s blob, intact as far as the check knows."""
        key = _key(digest)
        if key in self._verified:
            return BlobState.PRESENT
        if self._corrupt.get(key) is False:
            return BlobState.CORRUPT
        # Stored since the blob phase walked past it (or again after a repair removed it).
        try:
            info = await self.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            return BlobState.MISSING
        return BlobState.MISSING if info.is_dir else BlobState.PRESENT

    # -- findings --------------------------------------------------------------------------

    def suspects(self, repository: str | None) -> Suspects:
        return Suspects(self, repository)

    async def record(self, finding: Finding, repository: str | None) -> None:
        problem = Problem(finding.kind, finding.path, finding.detail, repository)
        self.report.problems.append(problem)
        if not self.repair:
            return
        if finding.repair is None:
            problem.action = finding.why_not
            return
        try:
            problem.action = await finding.repair()
            problem.repaired = True
        except LeftAlone as reason:
            problem.action = str(reason)
        except PathNotFound:
            problem.action, problem.repaired = "gone meanwhile", True
        except DriverError as error:
            problem.action = f"failed: {error}"
        if problem.repaired:
            self._announce(repository)

    def _announce(self, repository: str | None) -> None:
        """Tell the running registry's caches, right after the write."""
        if repository is None:
            if self.on_change_everything is not None:
                self.on_change_everything()
        elif self.on_change is not None:
            self.on_change(repository)


class Suspects:
    """Findings of one step waiting for their second look."""

    def __init__(self, checker: Checker, repository: str | None) -> None:
        self.checker = checker
        self.repository = repository
        self._waiting: list[tuple[float, Look]] = []

    async def look(self, look: Look) -> bool:
        """Look once; True when all is well, else queue the second look."""
        if not await look():
            return True
        self._waiting.append((time.monotonic(), look))
        return False

    async def settle(self) -> None:
        """The second look at everything queued: report (and repair) what is still wrong."""
        waiting, self._waiting = self._waiting, []
        for seen, look in waiting:
            delay = seen + self.checker.recheck_delay - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for finding in await look():
                await self.checker.record(finding, self.repository)
