"""What runs around one worker's app for operators: metrics, notifications and the change
tokens shared through Redis; built from the configuration and attached to the registry.

The app asks for three things: the change tokens to build its caches on (``generations``),
to have its registry decorated (``attach``: storage timing, cache counters, events), and to
have its HTTP entry point wrapped (``wrap``: request ids, metrics, access log, read barrier).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from wharf.coherence.caches import ContentCache, TokenCache
from wharf.coherence.generations import Generations
from wharf.coherence.shared import open_generations
from wharf.config import Config
from wharf.notifications import EventSink, notifying
from wharf.notifications.events import Source
from wharf.observability.context import CURRENT
from wharf.observability.metrics import Sample, WorkerMetrics, flush_loop
from wharf.observability.middleware import ObservedHTTP
from wharf.observability.process import process_samples
from wharf.observability.tracing_settings import tracing_settings
from wharf.registry.namespace import Registry
from wharf.storage.driver.checked import CheckedDriver, Observer
from wharf.worker_environment import WorkerEnvironment

if TYPE_CHECKING:
    from wharf.coherence.redis_tokens import RedisGenerations
    from wharf.observability.tracing import RequestTracer

__all__ = ["Operations"]
#: How long a stopping worker keeps sending queued notifications.
NOTIFICATION_DRAIN_SECONDS = 5.0
#: How long a stopping worker waits for cancelled requests to unwind.
QUIESCE_SECONDS = 2.0

HTTPEntry = Callable[[Any, Any, Any], Awaitable[None]]


Counted = TokenCache[Any, Any] | ContentCache[Any, Any]


def _cache_samples(caches: Mapping[str, Counted]) -> Callable[[], list[Sample]]:
    def samples() -> list[Sample]:
        found: list[Sample] = []
        for name, counted in caches.items():
            found.append(("wharf_cache_hits_total", {"cache": name}, float(counted.hits)))
            found.append(("wharf_cache_misses_total", {"cache": name}, float(counted.misses)))
        return found

    return samples


class Operations:
    def __init__(self, config: Config, environment: WorkerEnvironment) -> None:
        self.config = config
        self.environment = environment
        self.metrics = WorkerMetrics()
        self.metrics.collect(process_samples)
        #: Redis's when configured (every instance), else this machine's for the storage.
        self.generations: Generations = open_generations(config, self.metrics)
        # Redis's whenever configured; its module (and redis-py) are imported only then.
        self.redis = (
            cast("RedisGenerations", self.generations) if config.redis is not None else None
        )
        endpoints = [e for e in config.notifications.endpoints if not e.disabled]
        self.sink: EventSink | None = None
        if endpoints:
            self.sink = EventSink(config.notifications, self._source(), self.metrics)
        self._prefix = config.http.prefix.rstrip("/")
        self._tasks: list[asyncio.Task[None]] = []
        #: Spans of requests and storage calls, when OTEL_* asks for them.
        self.tracer: RequestTracer | None = None
        tracing = tracing_settings(os.environ)
        if tracing is not None:
            from wharf.observability.tracing import RequestTracer  # OpenTelemetry: only now

            self.tracer = RequestTracer(tracing, instance_id=environment.instance_id)

    def _source(self) -> Source:
        http = self.config.http
        port = http.addr.rpartition(":")[2] if http.net == "tcp" else ""
        addr = f"{socket.gethostname()}:{port}" if port else socket.gethostname()
        return Source(addr, self.environment.instance_id or str(uuid.uuid4()))

    def attach(self, registry: Registry) -> None:
        if isinstance(registry.driver, CheckedDriver):
            registry.driver.observe = self._storage_observer()
        cache = registry.cache
        self.count_caches(
            tags=cache.tags,
            links=cache.links,
            tag_lists=cache.tag_lists,
            catalog=cache.catalog,
            manifests=cache.manifests,
        )
        if registry.proxy is not None:
            self.metrics.collect(registry.proxy.samples)
        if self.sink is not None:
            registry.middleware.append(notifying(self.sink, self._url))

    def _storage_observer(self) -> Observer:
        tracer = self.tracer
        if tracer is None:
            return self.metrics.storage_call
        record = self.metrics.storage_call
        trace = tracer.storage_call

        def observe(driver: str, operation: str, seconds: float, failed: bool) -> None:
            record(driver, operation, seconds, failed)
            trace(driver, operation, seconds, failed)

        return observe

    def count_caches(self, **caches: Counted | None) -> None:
        """Report the hits and misses of ``caches`` (by name; None: not kept) in the metrics."""
        kept = {name: cache for name, cache in caches.items() if cache is not None}
        self.metrics.collect(_cache_samples(kept))

    def _url(self, path: str) -> str:
        host = self.config.http.host.rstrip("/")
        if not host:
            info = CURRENT.get()
            if info is not None and info.host:
                host = f"{info.scheme}://{info.host}"
        return f"{host}{self._prefix}{path}"

    def wrap(self, inner: HTTPEntry) -> ObservedHTTP:
        return ObservedHTTP(
            inner,
            self.metrics,
            access_log_enabled=self.config.log.access_log,
            consistency=self.redis,
            tracer=self.tracer,
        )

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        directory = self.environment.metrics_dir
        if directory:
            self._tasks.append(loop.create_task(flush_loop(self.metrics, directory)))
        if self.sink is not None:
            self.sink.start()
        if self.redis is not None:
            self.redis.start()

    async def aclose(self) -> None:
        # A server that stops after its drain timeout cancels the requests still running;
        # let them unwind (close their upload writers) before the storage goes away.
        for _ in range(int(QUIESCE_SECONDS / 0.05)):
            if self.metrics.in_flight <= 0:
                break
            await asyncio.sleep(0.05)
        if self.sink is not None:
            await self.sink.aclose(NOTIFICATION_DRAIN_SECONDS)
        if self.redis is not None:
            await self.redis.aclose()
        for task in self._tasks:  # last: the final snapshot includes everything above
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.tracer is not None:
            # Sends the spans still queued: blocking calls, up to a few seconds.
            await asyncio.to_thread(self.tracer.shutdown)
            self.tracer = None
