"""Collect on a schedule: ``storage.gc.enabled`` in the server, or ``--interval`` on the CLI."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable

from wharf.coherence.generations import Generations
from wharf.config.model import Config
from wharf.registry.gc.collector import CollectorBusy, GcOptions, GcResult, collect
from wharf.registry.gc.coordination import Coordination, CoordinationError
from wharf.storage.driver import DriverError, StorageDriver

__all__ = ["online_options", "run_schedule"]

log = logging.getLogger("wharf.gc")


def online_options(config: Config) -> GcOptions:
    """What ``storage.gc`` asks of a collection while the registry serves."""
    gc = config.storage.gc
    return GcOptions(delete_untagged=gc.delete_untagged, grace=gc.grace)


async def run_schedule(
    driver: StorageDriver,
    coordination: Coordination,
    options: GcOptions,
    interval: float,
    *,
    generations: Generations | None = None,
    first_delay: float | None = None,
    report: Callable[[GcResult], None] | None = None,
) -> None:
    """Collect every ``interval`` seconds until cancelled. Every worker of every instance may
    run this: the lease lets one collect and the others skip that round."""
    # Workers start together; spread their first attempts.
    delay = first_delay if first_delay is not None else min(interval, secrets.randbelow(60) + 1.0)
    while True:
        await asyncio.sleep(delay)
        delay = interval
        try:
            result = await collect(driver, coordination, options, generations=generations)
        except CollectorBusy:
            log.debug("garbage collection: another collection is running, skipped")
            continue
        except (CoordinationError, DriverError) as error:
            log.error("garbage collection failed: %s", error)
            continue
        except Exception:
            log.exception("garbage collection failed")
            continue
        if report is not None:
            report(result)
        for line in result.summary():
            log.info("garbage collection: %s", line)
