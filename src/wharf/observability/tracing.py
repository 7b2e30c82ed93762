"""OpenTelemetry spans: one server span per request, a child span per storage driver call.

Imported only when ``OTEL_*`` asks for traces (``tracing_settings``): with tracing off, no
OpenTelemetry module is loaded and the request path pays two ``is None`` tests.

Each worker process builds its own :class:`RequestTracer` (the batch exporter's thread must
not cross a fork) and shuts it down when it stops, sending what it holds. The request span
continues the client's trace when the request carries ``traceparent`` (W3C trace context, and
``OTEL_PROPAGATORS`` when set), is named after the route (``GET /v2/{name}/manifests/
{reference}``), and carries the route, method, status, repository and sizes; a 5xx marks it
failed. Its trace and span ids go into every log line of the request, the access line included.

Storage calls reach the tracer through the driver wrapper's ``observe`` hook, told after each
call how long it took: the child span is recorded with that start and end. The reads and
writes of a stream's chunks are not spans of their own (a 1 GB pull would make thousands);
the stream's opening, commit and close are.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, format_span_id, format_trace_id

from wharf import __version__
from wharf.observability.context import RequestInfo
from wharf.observability.tracing_settings import TracingSettings

__all__ = ["ROUTE_TEMPLATES", "RequestSpan", "RequestTracer"]

#: ``http.route`` for each of wharf's route names (as ``note_route`` records them).
ROUTE_TEMPLATES = {
    "base": "/v2/",
    "catalog": "/v2/_catalog",
    "manifest": "/v2/{name}/manifests/{reference}",
    "blob": "/v2/{name}/blobs/{digest}",
    "upload_start": "/v2/{name}/blobs/uploads/",
    "upload": "/v2/{name}/blobs/uploads/{uuid}",
    "tags": "/v2/{name}/tags/list",
    "referrers": "/v2/{name}/referrers/{digest}",
}
#: Headers a propagator may read, the only ones copied for it.
_PROPAGATED = frozenset((b"traceparent", b"tracestate", b"baggage"))
#: Chunk operations of readers and writers: too many to be spans.
_CHUNK_OPERATIONS = frozenset(("read", "write"))
#: How long a stopping worker waits for its last spans to be sent.
_SHUTDOWN_MILLIS = 5000


class RequestSpan:
    """A request's span and the context token that makes it current."""

    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span, token: object) -> None:
        self.span = span
        self.token = token


class RequestTracer:
    def __init__(self, settings: TracingSettings, *, instance_id: str = "") -> None:
        attributes: dict[str, str] = {SERVICE_VERSION: __version__}
        if instance_id:
            attributes[SERVICE_INSTANCE_ID] = instance_id
        resource = Resource.create(attributes)
        # OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name the service when set.
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "wharf"}))
        # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
        self.provider = TracerProvider(resource=resource)
        for exporter in _exporters(settings):
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer("wharf", __version__)

    def start(self, scope: Mapping[str, Any], info: RequestInfo) -> RequestSpan:
        """Open the request's server span, make it current, note its ids on ``info``."""
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _PROPAGATED
        }
        parent = extract(carrier) if carrier else None
        attributes = {"http.request.method": info.method, "url.path": info.path}
        scheme = scope.get("scheme")
        if scheme:
            attributes["url.scheme"] = scheme
        span = self._tracer.start_span(
            info.method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        ids = span.get_span_context()
        if ids.is_valid:
            info.trace_id = format_trace_id(ids.trace_id)
            info.span_id = format_span_id(ids.span_id)
        return RequestSpan(span, token)

    def end(
        self, request: RequestSpan, info: RequestInfo, status: int, bytes_in: int, bytes_out: int
    ) -> None:
        span = request.span
        try:
            if span.is_recording():
                template = ROUTE_TEMPLATES.get(info.route)
                if template is not None:
                    span.update_name(f"{info.method} {template}")
                    span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if info.repository:
                    span.set_attribute("wharf.repository", info.repository)
                if info.actor:
                    span.set_attribute("enduser.id", info.actor)
                if bytes_in:
                    span.set_attribute("http.request.body.size", bytes_in)
                span.set_attribute("http.response.body.size", bytes_out)
                if status >= 500:
                    span.set_attribute("error.type", str(status))
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
        finally:
            otel_context.detach(request.token)  # type: ignore[arg-type]

    def storage_call(self, driver: str, operation: str, seconds: float, failed: bool) -> None:
        """A finished driver call, as a child of the request being served (calls outside any
        request, such as upload purging and health checks, are not traced)."""
        if operation in _CHUNK_OPERATIONS or not trace.get_current_span().is_recording():
            return
        end = time.time_ns()
        span = self._tracer.start_span(
            f"{driver}.{operation}",
            kind=SpanKind.INTERNAL,
            start_time=end - int(seconds * 1e9),
            attributes={"wharf.storage.driver": driver, "wharf.storage.operation": operation},
        )
        if failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)

    def shutdown(self) -> None:
        """Send what is queued (for at most a few seconds) and stop the exporters."""
        self.provider.force_flush(_SHUTDOWN_MILLIS)
        self.provider.shutdown()


def _exporters(settings: TracingSettings) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in settings.exporters:
        if name == "console":
            exporters.append(ConsoleSpanExporter(out=sys.stderr))
        elif settings.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GRPCExporter,
            )

            exporters.append(GRPCExporter())
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
    return exporters
