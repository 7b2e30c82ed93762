"""Around every HTTP request: its id, its metrics, its access log line, its trace span when
tracing is on, and the consistency steps that several instances need (a read barrier before,
settled invalidations before the response). Plain ASGI around the app's own entry point, so
the app knows nothing of it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, Protocol

from wharf.observability.context import CURRENT, RequestInfo, accept_request_id
from wharf.observability.metrics import WorkerMetrics

__all__ = ["Consistency", "ObservedHTTP", "Tracer"]

access_log = logging.getLogger("wharf.access")
log = logging.getLogger("wharf.api")

Scope = Any
Message = Any
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_UPLOAD_ROUTES = frozenset(("upload", "upload_start"))
#: Status recorded when the client went away before any response was sent (as nginx does).
CLIENT_GONE = 499


#: Routes whose writes change what other instances cache (tags, manifest links): when such a
#: change cannot be announced, the request must not report success.
_CACHED_ROUTES = frozenset(("manifest",))


class Consistency(Protocol):
    """What the shared change tokens need from each request (``coherence.redis_tokens``)."""

    async def barrier(self) -> None:
        """Return once every change announced before this call is applied here."""

    async def settle(self, announcements: list[Awaitable[None]]) -> None:
        """Return once ``announcements`` have reached the other instances; raise if not."""


class Tracer(Protocol):
    """What a request's span needs (``tracing.RequestTracer``)."""

    def start(self, scope: Scope, info: RequestInfo) -> Any:
        """Open the request's span; the value is handed back to :meth:`end`."""

    def end(self, span: Any, info: RequestInfo, status: int, bytes_in: int, bytes_out: int) -> None:
        """Close it once the response is sent (or the client has gone)."""


def _reads_no_cache(path: str) -> bool:
    """Blob requests (``.../blobs/<digest>``) and the start of an upload
    (``.../blobs/uploads/``) read no cache, a repository's blob links being read from storage
    each time, so they need no read barrier. Requests to an upload session do: a process
    continues a session from what it remembers of it. Decided on the last components, as
    the routes are: a repository may well be called ``x/blobs/y``, its manifests still end in
    ``/manifests/<reference>``."""
    parts = path.rsplit("/", 3)
    return len(parts) == 4 and (
        parts[2] == "blobs" or (parts[2] == "uploads" and parts[1] == "blobs" and not parts[3])
    )


class ObservedHTTP:
    def __init__(
        self,
        inner: Callable[[Scope, Receive, Send], Awaitable[None]],
        metrics: WorkerMetrics,
        *,
        access_log_enabled: bool = True,
        consistency: Consistency | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.access_log_enabled = access_log_enabled
        self.consistency = consistency
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        method: str = scope["method"]
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        info = RequestInfo(accept_request_id(incoming), method, scope["path"], scope)
        token = CURRENT.set(info)
        tracer = self.tracer
        span = None if tracer is None else tracer.start(scope, info)
        metrics = self.metrics
        metrics.in_flight += 1
        state = _Exchange(info, metrics, self.consistency, send)
        try:
            if self.consistency is not None and not _reads_no_cache(info.path):
                await self.consistency.barrier()
            if method in _BODY_METHODS:
                state.receive = receive
                await self.inner(scope, state.counting_receive, state.send)
            else:
                await self.inner(scope, receive, state.send)
        finally:
            metrics.in_flight -= 1
            if state.upload:
                metrics.uploads_in_progress -= 1
            elapsed = perf_counter() - start
            status = state.status or CLIENT_GONE
            metrics.request(info.route, method, status, elapsed, state.bytes_in, state.bytes_out)
            if self.access_log_enabled and access_log.isEnabledFor(logging.INFO):
                # The record is made here rather than by access_log.info, which would walk
                # the stack for a caller no formatter prints (a quarter of the line's cost).
                record = access_log.makeRecord(
                    access_log.name,
                    logging.INFO,
                    "",
                    0,
                    "%s %s %d",
                    (method, info.path, status),
                    None,
                    extra={
                        "method": method,
                        "path": info.path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "bytes_in": state.bytes_in,
                        "bytes_out": state.bytes_out,
                    },
                )
                access_log.handle(record)
            CURRENT.reset(token)
            if tracer is not None:
                tracer.end(span, info, status, state.bytes_in, state.bytes_out)


class _Exchange:
    """The request's counters, and the send and receive that keep them."""

    __slots__ = (
        "_consistency",
        "_dropping",
        "_info",
        "_metrics",
        "_send",
        "bytes_in",
        "bytes_out",
        "receive",
        "request_id",
        "status",
        "upload",
    )

    def __init__(
        self,
        info: RequestInfo,
        metrics: WorkerMetrics,
        consistency: Consistency | None,
        send: Send,
    ) -> None:
        self._info = info
        self._metrics = metrics
        self.request_id = info.id.encode("latin-1")
        self._consistency = consistency
        self._send = send
        self._dropping = False
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.upload = False
        self.receive: Receive | None = None

    async def counting_receive(self) -> Message:
        assert self.receive is not None
        if not self.upload and self._info.route in _UPLOAD_ROUTES:
            # Routed by now (handlers read bodies after dispatch): an upload receiving data.
            self.upload = True
            self._metrics.uploads_in_progress += 1
        message = await self.receive()
        body = message.get("body")
        if body:
            self.bytes_in += len(body)
        return message

    async def send(self, message: Message) -> None:
        if self._dropping:
            return
        kind = message["type"]
        if kind == "http.response.start":
            consistency = self._consistency
            announcements = self._info.announcements
            if consistency is not None and announcements:
                try:
                    await consistency.settle(announcements)
                except Exception as error:
                    if self._info.route in _CACHED_ROUTES:
                        await self._unavailable(error)
                        return
                    # Nothing another instance caches changed (blob links are read from
                    # storage each time): answer, and let the announcement be retried.
                    log.warning("change not announced yet, will retry: %s", error)
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), (b"x-request-id", self.request_id)]
        elif kind == "http.response.body":
            body = message.get("body")
            if body:
                self.bytes_out += len(body)
        await self._send(message)

    async def _unavailable(self, error: Exception) -> None:
        # The change is stored, but other instances could still serve what it replaced: the
        # client must not take this for success. Retrying the request is safe.
        log.error("could not announce a change to the other instances: %s", error)
        self._dropping = True
        self.status = 503
        body = json.dumps(
            {
                "errors": [
                    {
                        "code": "UNAVAILABLE",
                        "message": "change stored but not yet visible everywhere; retry",
                        "detail": None,
                    }
                ]
            }
        ).encode()
        await self._send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", self.request_id),
                ],
            }
        )
        await self._send({"type": "http.response.body", "body": body})
        self.bytes_out = len(body)
