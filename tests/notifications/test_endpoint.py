"""One endpoint's queue and sender: order, batching, retries with threshold and back-off,
filters, a full queue dropping its oldest events, and a request never waiting."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest

from wharf.config.operations import EndpointConfig, NotificationsConfig
from wharf.notifications import EVENTS_MEDIA_TYPE, Endpoint, EventSink, Target
from wharf.notifications.events import Event, Source, new_event
from wharf.observability.context import CURRENT, RequestInfo
from wharf.observability.metrics import WorkerMetrics


class Receiver:
    """A poster that records envelopes and answers from a script of statuses."""

    def __init__(self, *statuses: int | None, delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.calls: list[tuple[list[dict[str, Any]], dict[str, str], float]] = []

    async def __call__(
        self, url: str, body: bytes, headers: list[tuple[str, str]], seconds: float
    ) -> int:
        await asyncio.sleep(self.delay)
        self.calls.append((json.loads(body)["events"], dict(headers), time.monotonic()))
        status = self.statuses.pop(0) if self.statuses else 200
        if status is None:
            raise ConnectionRefusedError("refused")
        return status

    def delivered(self) -> list[str]:
        return [event["target"]["tag"] for events, _, _ in self.calls for event in events]


def _config(**options: Any) -> EndpointConfig:
    settings: dict[str, Any] = {
        "threshold": 3,
        "backoff": timedelta(milliseconds=200),
        "headers": {"Authorization": ("Bearer x",)},
        **options,
    }
    return EndpointConfig("hook", "http://hook.invalid/events", **settings)


def _event(tag: str, action: str = "push", media_type: str = "application/x") -> Event:
    return new_event(action, Target("repo", tag=tag, media_type=media_type), None, Source())


async def _settled(endpoint: Endpoint) -> None:
    for _ in range(500):
        if endpoint.pending == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("events still pending")


async def test_events_arrive_in_order_with_the_headers() -> None:
    receiver = Receiver()
    endpoint = Endpoint(_config(), poster=receiver)
    endpoint.start()
    for index in range(200):
        endpoint.enqueue(_event(str(index)))
    await _settled(endpoint)
    await endpoint.aclose()
    assert receiver.delivered() == [str(index) for index in range(200)]
    headers = receiver.calls[0][1]
    assert headers["Content-Type"] == EVENTS_MEDIA_TYPE
    assert headers["Authorization"] == "Bearer x"
    assert len(receiver.calls) < 200  # batched into envelopes


async def test_retries_at_once_then_backs_off_after_threshold() -> None:
    receiver = Receiver(500, None, 503, 500, 200)
    metrics = WorkerMetrics()
    endpoint = Endpoint(_config(), metrics, poster=receiver)
    endpoint.start()
    endpoint.enqueue(_event("a"))
    await _settled(endpoint)
    await endpoint.aclose()
    assert receiver.delivered() == ["a"] * 5
    times = [call[2] for call in receiver.calls]
    assert times[2] - times[0] < 0.15  # the first three failures: no waiting
    assert times[3] - times[2] >= 0.18  # threshold reached: back off
    assert times[4] - times[3] >= 0.18
    assert (
        metrics.counters[
            ("wharf_notification_events_total", (("endpoint", "hook"), ("result", "sent")))
        ]
        == 1
    )
    statuses = {
        labels[1][1]: value
        for (name, labels), value in metrics.counters.items()
        if name == "wharf_notification_requests_total"
    }
    assert statuses == {"500": 2, "0": 1, "503": 1, "200": 1}


async def test_a_full_queue_drops_the_oldest_and_counts_them() -> None:
    receiver = Receiver(*([500] * 1000))
    metrics = WorkerMetrics()
    endpoint = Endpoint(_config(queue_size=10, backoff=timedelta(seconds=30)), metrics, receiver)
    endpoint.start()
    endpoint.enqueue(_event("first"))
    await asyncio.sleep(0.05)  # being retried now
    started = time.monotonic()
    for index in range(100):
        endpoint.enqueue(_event(str(index)))
    assert time.monotonic() - started < 1.0  # never waits for the 30 s backoff
    assert endpoint.pending == 11  # the batch in flight and the ten newest
    dropped = metrics.counters[
        ("wharf_notification_events_total", (("endpoint", "hook"), ("result", "dropped")))
    ]
    assert dropped == 90
    await endpoint.aclose(drain_seconds=0.1)


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        ({"ignored_actions": ("pull",)}, ["push-a", "delete-c"]),
        ({"ignored_media_types": ("application/octet-stream",)}, ["pull-b", "delete-c"]),
        ({}, ["push-a", "pull-b", "delete-c"]),
    ],
)
async def test_filters(options: dict[str, Any], kept: list[str]) -> None:
    receiver = Receiver()
    sink = EventSink(
        NotificationsConfig((_config(**options),)), Source("host:5000", "id"), poster=receiver
    )
    sink.start()
    sink.emit("push", Target("r", tag="push-a", media_type="application/octet-stream"))
    sink.emit(
        "pull", Target("r", tag="pull-b", media_type="application/vnd.oci.image.manifest.v1+json")
    )
    sink.emit("delete", Target("r", tag="delete-c"))
    await _settled(sink.endpoints[0])
    await sink.aclose()
    assert receiver.delivered() == kept


async def test_disabled_endpoints_get_nothing() -> None:
    sink = EventSink(NotificationsConfig((_config(disabled=True),)), Source())
    assert sink.endpoints == []


def test_the_event_format_is_distributions() -> None:
    info = RequestInfo(
        "req-1",
        "PUT",
        "/v2/library/app/manifests/latest",
        {
            "headers": [(b"host", b"registry:5000"), (b"user-agent", b"docker/27")],
            "client": ("10.0.0.9", 41000),
        },
    )
    info.actor = "alice"
    token = CURRENT.set(info)
    try:
        event = new_event(
            "push",
            Target(
                "library/app",
                "sha256:abc",
                "application/vnd.oci.image.manifest.v1+json",
                528,
                "https://registry:5000/v2/library/app/manifests/sha256:abc",
                "latest",
            ),
            CURRENT.get(),
            Source("host:5000", "instance"),
        ).as_dict()
    finally:
        CURRENT.reset(token)
    assert set(event) == {"id", "timestamp", "action", "target", "request", "actor", "source"}
    assert event["timestamp"].endswith("Z")
    assert event["target"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": 528,
        "digest": "sha256:abc",
        "length": 528,
        "repository": "library/app",
        "url": "https://registry:5000/v2/library/app/manifests/sha256:abc",
        "tag": "latest",
    }
    assert event["request"] == {
        "id": "req-1",
        "addr": "10.0.0.9:41000",
        "host": "registry:5000",
        "method": "PUT",
        "useragent": "docker/27",
    }
    assert event["actor"] == {"name": "alice"}
    assert event["source"] == {"addr": "host:5000", "instanceID": "instance"}
    deleted = new_event("delete", Target("library/app", "sha256:abc"), None, Source()).as_dict()
    assert deleted["target"] == {"digest": "sha256:abc", "repository": "library/app"}
