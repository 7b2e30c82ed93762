"""Every configured endpoint behind one ``emit``: the filters, then each endpoint's queue."""

from __future__ import annotations

import asyncio
import logging

from wharf.config.operations import NotificationsConfig
from wharf.notifications.endpoint import Endpoint, Poster, post
from wharf.notifications.events import Source, Target, new_event
from wharf.observability.context import CURRENT
from wharf.observability.metrics import WorkerMetrics

__all__ = ["EventSink"]

log = logging.getLogger("wharf.notifications")


class EventSink:
    def __init__(
        self,
        config: NotificationsConfig,
        source: Source,
        metrics: WorkerMetrics | None = None,
        poster: Poster = post,
    ) -> None:
        self.include_references = config.include_references
        self.source = source
        self.endpoints = [
            Endpoint(endpoint, metrics, poster)
            for endpoint in config.endpoints
            if not endpoint.disabled
        ]

    def emit(self, action: str, target: Target) -> None:
        """Queue an event for every endpoint that wants it; never waits."""
        event = new_event(action, target, CURRENT.get(), self.source)
        for endpoint in self.endpoints:
            if endpoint.accepts(event):
                endpoint.enqueue(event)

    def start(self) -> None:
        for endpoint in self.endpoints:
            log.info("notification endpoint %s: %s", endpoint.name, endpoint.config.url)
            endpoint.start()

    async def aclose(self, drain_seconds: float = 5.0) -> None:
        await asyncio.gather(*(endpoint.aclose(drain_seconds) for endpoint in self.endpoints))
