"""Retries of a remote store's calls: the backoff every remote driver uses, and the call of a
blocking SDK function in a driver's threads that the S3 and Azure drivers share."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["RetryPolicy", "call_in_thread"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts in all (1 = no retry) and the exponential backoff between them."""

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        # Full jitter: concurrent writers that failed together do not retry together.
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


async def call_in_thread(
    executor: Executor,
    retry: RetryPolicy,
    function: Callable[[], _T],
    *,
    operation: str,
    idempotent: bool,
    errors: type[BaseException] | tuple[type[BaseException], ...],
    retryable: Callable[[BaseException], bool],
    log: logging.Logger,
    store: str,
) -> _T:
    """``function()`` in ``executor``; retried on ``retryable`` errors when ``idempotent``.
    Each attempt is logged at debug level, with its time."""
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        started = time.perf_counter()
        try:
            result = await loop.run_in_executor(executor, function)
        except errors as exc:
            attempt += 1
            again = idempotent and attempt < retry.attempts and retryable(exc)
            log.debug(
                "%s %s failed after %.3fs (attempt %d%s): %s",
                store,
                operation,
                time.perf_counter() - started,
                attempt,
                ", retrying" if again else "",
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            if not again:
                raise
            await asyncio.sleep(retry.delay(attempt - 1))
            continue
        log.debug("%s %s took %.3fs", store, operation, time.perf_counter() - started)
        return result
