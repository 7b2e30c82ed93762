"""One check of a registry's storage: the blob phase, then the repository phase."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor

from wharf.config.mirrors import MirrorConfig
from wharf.config.validation import ValidationConfig
from wharf.registry.check.blobs import check_blobs
from wharf.registry.check.checker import RECHECK_DELAY, Checker
from wharf.registry.check.report import CheckReport, Kind
from wharf.registry.check.repository import check_repositories
from wharf.registry.gc.progress import Progress
from wharf.registry.proxy.routes import match
from wharf.storage.driver import StorageDriver

__all__ = ["DEFAULT_CONCURRENCY", "check_storage"]

#: Blobs hashed at once.
DEFAULT_CONCURRENCY = 4


async def check_storage(
    driver: StorageDriver,
    *,
    repair: bool = False,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_change: Callable[[str], None] | None = None,
    on_change_everything: Callable[[], None] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    recheck_delay: float = RECHECK_DELAY,
    validation: ValidationConfig | None = None,
    mirrors: tuple[MirrorConfig, ...] = (),
) -> CheckReport:
    """Check (and with ``repair``, repair) the storage behind ``driver``.

    ``executor`` hashes blobs (one of ``concurrency`` threads is made when None). After each
    repair, ``on_change`` is called with the repository's name, or ``on_change_everything``
    for a repair in the blob store, so that a running registry drops what it cached.
    ``validation`` and ``mirrors`` are the registry's: a reference it lets be absent (of a
    sparse push, or in a mirrored repository) is not missing.
    Storage errors other than a path that vanished (DriverError) end the check.
    """
    own = executor is None
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="wharf-check")
    checker = Checker(
        driver,
        repair=repair,
        executor=executor,
        progress=progress or Progress(),
        on_change=on_change,
        on_change_everything=on_change_everything,
        recheck_delay=recheck_delay,
        concurrency=concurrency,
        validation=validation,
        mirrored=lambda name: match(mirrors, name) is not None,
    )
    clock = time.monotonic()
    try:
        await check_blobs(checker)
        await check_repositories(checker)
    finally:
        if own:
            # Nothing is hashing once the phases returned; after a failure a thread may
            # still finish its chunk, which need not be waited for.
            executor.shutdown(wait=False)
    report = checker.report
    report.seconds = time.monotonic() - clock
    report.stats.blobs_corrupt = sum(p.kind is Kind.BLOB_CORRUPT for p in report.problems)
    report.sort()
    return report
