"""One notification endpoint: a bounded queue and the task that sends it, as Distribution's
retrying sink does, except that a request never waits for it.

Events are sent in order, up to ``MAX_BATCH`` to an envelope. A delivery that fails is tried
again at once until ``threshold`` failures in a row, then once per ``backoff`` until it goes
through. Meanwhile new events queue up; when the queue is full the oldest are dropped and
counted (``wharf_notification_events_total{result="dropped"}``), so that a slow or dead
endpoint costs memory that is bounded, and never time on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable

from wharf.config.operations import EndpointConfig
from wharf.notifications.events import EVENTS_MEDIA_TYPE, Event, envelope
from wharf.observability.metrics import Sample, WorkerMetrics

__all__ = ["MAX_BATCH", "Endpoint", "Poster", "post"]

log = logging.getLogger("wharf.notifications")

MAX_BATCH = 64
#: (url, body, headers, timeout in seconds) -> HTTP status; raises OSError when there is none.
Poster = Callable[[str, bytes, list[tuple[str, str]], float], Awaitable[int]]


def _post_blocking(url: str, body: bytes, headers: list[tuple[str, str]], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    for name, value in headers:
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:  # an answer, if not a good one
        with contextlib.suppress(OSError):
            error.read()
        return int(error.code)


async def post(url: str, body: bytes, headers: list[tuple[str, str]], seconds: float) -> int:
    """POST in a thread: endpoints are few and slow, and urllib speaks HTTPS and proxies."""
    return await asyncio.to_thread(_post_blocking, url, body, headers, seconds)


class Endpoint:
    def __init__(
        self,
        config: EndpointConfig,
        metrics: WorkerMetrics | None = None,
        poster: Poster = post,
    ) -> None:
        self.config = config
        self.name = config.name
        self._metrics = metrics or WorkerMetrics()
        self._poster = poster
        self._queue: deque[Event] = deque()
        self._sending: list[Event] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._last_failure = 0.0
        self._warned_full = False
        self._headers = [("Content-Type", EVENTS_MEDIA_TYPE)] + [
            (name, value) for name, values in config.headers.items() for value in values
        ]
        self._metrics.collect(self._samples)

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._sending)

    def _samples(self) -> list[Sample]:
        return [("wharf_notification_pending", {"endpoint": self.name}, float(self.pending))]

    def _count(self, result: str, value: int = 1) -> None:
        self._metrics.inc(
            "wharf_notification_events_total", value, endpoint=self.name, result=result
        )

    def accepts(self, event: Event) -> bool:
        config = self.config
        if event.action in config.ignored_actions:
            return False
        media_type = event.target.media_type
        return not (media_type and media_type in config.ignored_media_types)

    def enqueue(self, event: Event) -> None:
        if len(self._queue) >= self.config.queue_size:
            self._queue.popleft()
            self._count("dropped")
            if not self._warned_full:
                self._warned_full = True  # once until the endpoint delivers again
                log.warning("notification endpoint %s: queue full, dropping events", self.name)
        self._queue.append(event)
        self._count("queued")
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                count = min(len(self._queue), MAX_BATCH)
                self._sending = [self._queue.popleft() for _ in range(count)]
                await self._deliver(envelope(self._sending))
                self._count("sent", len(self._sending))
                self._sending = []
            self._idle.set()

    async def _deliver(self, body: bytes) -> None:
        config = self.config
        while True:
            if self._failures >= config.threshold:
                wait = config.backoff.total_seconds() - (time.monotonic() - self._last_failure)
                if wait > 0:
                    await asyncio.sleep(wait)
            if await self._attempt(body):
                if self._failures:
                    log.info("notification endpoint %s: delivering again", self.name)
                self._failures = 0
                self._warned_full = False
                return
            self._failures += 1
            self._last_failure = time.monotonic()
            if self._failures == config.threshold:
                log.warning(
                    "notification endpoint %s: %d failures in a row, retrying every %ss",
                    self.name,
                    self._failures,
                    config.backoff.total_seconds(),
                )

    async def _attempt(self, body: bytes) -> bool:
        config = self.config
        try:
            status = await self._poster(
                config.url, body, self._headers, config.timeout.total_seconds()
            )
        except (OSError, ValueError) as error:  # refused, timed out, unreachable
            self._metrics.inc("wharf_notification_requests_total", endpoint=self.name, status="0")
            if self._failures == 0:
                log.warning("notification endpoint %s: %s", self.name, error)
            return False
        self._metrics.inc(
            "wharf_notification_requests_total", endpoint=self.name, status=str(status)
        )
        if 200 <= status < 400:
            return True
        if self._failures == 0:
            log.warning("notification endpoint %s answered %d", self.name, status)
        return False

    async def aclose(self, drain_seconds: float = 5.0) -> None:
        """Send what is queued for at most ``drain_seconds``, then stop; the rest is lost
        (Distribution's queues are in memory too)."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), drain_seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self.pending:
            log.warning(
                "notification endpoint %s: %d events not sent at shutdown", self.name, self.pending
            )
            self._count("dropped", self.pending)
