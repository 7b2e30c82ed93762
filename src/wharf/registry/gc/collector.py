"""One collection: take the lease, start an epoch, drain writers, mark, sweep, end the epoch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from wharf.coherence.generations import Generations
from wharf.registry.gc.coordination import Coordination
from wharf.registry.gc.mark import MarkResult, mark
from wharf.registry.gc.progress import Progress
from wharf.registry.gc.safety import Freshness
from wharf.registry.gc.sweep import SweepResult, sweep
from wharf.storage.driver import StorageDriver

__all__ = ["CollectorBusy", "GcOptions", "GcResult", "collect", "format_size"]


class CollectorBusy(Exception):
    """Another collection holds the lease."""


@dataclass(frozen=True, slots=True)
class GcOptions:
    dry_run: bool = False
    delete_untagged: bool = False
    #: Blobs and links younger than this are kept (0: the registry is stopped or read-only).
    grace: timedelta = timedelta(0)
    #: No registry serves the storage (an offline run, which stops if one starts): nothing
    #: is kept for being recent, which a store's clock or its rounding of times (Swift
    #: rounds Last-Modified up) would otherwise decide for what was written just before.
    offline: bool = False
    #: Seconds to wait for manifest PUTs that started before the collection.
    drain_timeout: float = 300.0


@dataclass(slots=True)
class GcResult:
    options: GcOptions
    seconds: float = 0.0
    mark: MarkResult = field(default_factory=MarkResult)
    sweep: SweepResult = field(default_factory=SweepResult)

    @property
    def changed(self) -> bool:
        return not self.options.dry_run and bool(
            self.sweep.manifests_removed or self.sweep.blobs_removed
        )

    def summary(self) -> list[str]:
        """What was, or would be, freed, in a few lines."""
        m, s = self.mark, self.sweep
        verb = "would remove" if self.options.dry_run else "removed"
        lines = [
            f"{_count(m.repositories, 'repository', 'repositories')}, "
            f"{_count(m.manifests, 'manifest')}, {_count(s.blobs, 'blob')} "
            f"({len(m.marked)} marked in use) in {self.seconds:.1f}s",
            f"{verb}: {_count(len(s.manifests_removed), 'manifest')}, "
            f"{_count(len(s.blobs_removed), 'blob')} ({format_size(s.bytes_removed)}), "
            f"{_count(s.links_removed, 'layer link')}",
        ]
        if s.recent:
            lines.append(
                f"kept {_count(s.recent, 'unreferenced blob')} ({format_size(s.recent_bytes)}) "
                f"younger than the grace period ({_duration(self.options.grace)})"
            )
        if s.in_use:
            lines.append(
                f"kept {_count(s.in_use, 'unreferenced blob')} ({format_size(s.in_use_bytes)}) "
                "needed by uploads or pushes in progress"
            )
        if s.manifests_spared:
            lines.append(
                f"kept {_count(s.manifests_spared, 'untagged manifest')} "
                "pushed again during the collection"
            )
        if m.unreadable:
            lines.append(
                f"kept {_count(len(m.unreadable), 'manifest')} that cannot be read, "
                "and every blob their repositories link"
            )
        if m.uncertain:
            lines.append(
                f"removed no manifest from repositories with unreadable entries: "
                f"{'; '.join(m.uncertain[:5])}{' ...' if len(m.uncertain) > 5 else ''}"
            )
        if s.errors:
            lines.append(f"{_count(len(s.errors), 'error')}: {'; '.join(s.errors[:5])}")
        return lines


async def collect(
    driver: StorageDriver,
    coordination: Coordination,
    options: GcOptions,
    *,
    progress: Progress | None = None,
    generations: Generations | None = None,
) -> GcResult:
    """Collect once; CollectorBusy when another collection runs (a dry run never waits)."""
    progress = progress or Progress()
    result = GcResult(options)
    clock = time.monotonic()
    lease = None
    if not options.dry_run:
        lease = await coordination.acquire()
        if lease is None:
            raise CollectorBusy("another garbage collection is running")
    try:
        if lease is not None:
            await lease.start_epoch()
            progress.phase("waiting for manifest pushes that started before")
            await lease.drain_writers(options.drain_timeout)
            progress.done()
        freshness = Freshness(None if options.offline else datetime.now(UTC) - options.grace)
        result.mark = await mark(driver, freshness, options.delete_untagged, progress)
        result.sweep = await sweep(driver, result.mark, freshness, lease, progress)
        if result.changed and generations is not None:
            generations.changed_everything()  # no worker may serve a cached link to a swept blob
    finally:
        if lease is not None:
            await lease.finish()
    result.seconds = time.monotonic() - clock
    return result


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _count(count: int, noun: str, plural: str = "") -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v)
    return text or "0s"
