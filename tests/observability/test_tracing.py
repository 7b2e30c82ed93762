"""Tracing: the ``OTEL_*`` settings, spans reaching an OTLP receiver (in process and from a
real server's workers), trace ids in the JSON logs, and nothing imported when off."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import push_image
from tests.observability.test_requests import logged
from tests.support.otlp import INTERNAL, SERVER, OTLPReceiver, ReceivedSpan
from tests.support.server import WharfServer
from wharf.api.app import WharfApp, create_app
from wharf.api.context import AppContext
from wharf.api.http import Request, Response
from wharf.config import Config, HTTPConfig, LogConfig, StorageConfig
from wharf.config.sources import ConfigError
from wharf.observability.tracing_settings import TracingSettings, tracing_settings

__all__ = ["logged"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: A client's trace context, which the request span continues.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"OTEL_SERVICE_NAME": "registry"}, None),
        ({"OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, TracingSettings(("otlp",))),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, TracingSettings(("otlp", "console"))),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            TracingSettings(("otlp",), endpoint="http://collector:4318"),
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            TracingSettings(("otlp",), "grpc", "http://collector:4317"),
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None),
    ],
)
def test_traces_only_when_told_where_to_send(
    environ: dict[str, str], expected: TracingSettings | None
) -> None:
    assert tracing_settings(environ) == expected


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ],
)
def test_a_setting_wharf_cannot_honour_is_refused_by_name(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        tracing_settings(environ)


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


def _otel_environment(receiver: OTLPReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # milliseconds: the spans arrive while the test waits
        "OTEL_SERVICE_NAME": "registry-under-test",
    }


@pytest.fixture
async def traced_app(
    tmp_path: Path, receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[WharfApp]:
    for name, value in _otel_environment(receiver).items():
        monkeypatch.setenv(name, value)
    config = Config(
        log=LogConfig(formatter="json"),
        storage=StorageConfig(parameters={"rootdirectory": str(tmp_path / "data")}),
        http=HTTPConfig(secret="s"),
    )
    app = create_app(config)

    async def failing(ctx: AppContext, request: Request) -> Response:
        logging.getLogger("wharf.test").error("something failed inside the request")
        raise RuntimeError("boom")

    app.extra_routes["/failing"] = failing
    try:
        yield app
    finally:
        await app.aclose()


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id]


async def test_a_span_per_request_with_its_storage_calls_as_children(
    traced_app: WharfApp,
    receiver: OTLPReceiver,
    logged: Callable[[], list[dict[str, Any]]],
) -> None:
    transport = httpx.ASGITransport(app=traced_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as client:
        _, manifest = await push_image(client, "team/app", "v1", layer_count=1)
        got = await client.get(
            "/v2/team/app/manifests/v1",
            headers={"Accept": OCI_MANIFEST, "traceparent": TRACEPARENT},
        )
        assert got.status_code == 200
        failed = await client.get("/failing")
        assert failed.status_code == 500
    # config, layer, manifest PUT, manifest GET, the failing request
    requests = 5
    await traced_app.aclose()  # flushes the last spans
    spans = receiver.wait_for(lambda spans: sum(s.kind == SERVER for s in spans) >= requests)
    servers = [s for s in spans if s.kind == SERVER]
    assert len(servers) == requests
    assert len({s.trace_id for s in servers}) == requests  # one trace per request

    get = next(s for s in servers if s.name == "GET /v2/{name}/manifests/{reference}")
    assert get.trace_id == TRACE_ID  # the client's trace goes on
    assert get.parent_span_id == "00f067aa0ba902b7"
    assert get.attributes["http.route"] == "/v2/{name}/manifests/{reference}"
    assert get.attributes["http.request.method"] == "GET"
    assert get.attributes["http.response.status_code"] == 200
    assert get.attributes["http.response.body.size"] == len(manifest)
    assert get.attributes["wharf.repository"] == "team/app"
    assert get.resource["service.name"] == "registry-under-test"
    assert not get.error

    put = next(s for s in servers if s.name == "PUT /v2/{name}/manifests/{reference}")
    children = _children(spans, put)
    assert children, "a manifest PUT calls the storage"
    assert {c.kind for c in children} == {INTERNAL}
    assert all(c.trace_id == put.trace_id for c in children)
    assert all(put.start_ns <= c.start_ns <= c.end_ns <= put.end_ns for c in children)
    operations = {c.attributes["wharf.storage.operation"] for c in children}
    assert "put_content" in operations  # the manifest's links
    assert {c.attributes["wharf.storage.driver"] for c in children} == {"filesystem"}

    failing = next(s for s in servers if s.attributes["url.path"] == "/failing")
    assert failing.error
    assert failing.attributes["http.response.status_code"] == 500

    # Trace ids in the logs: every access line, and the error lines of a traced request.
    lines = logged()
    access = [line for line in lines if line["logger"] == "wharf.access"]
    assert len(access) == requests
    by_trace = {s.trace_id: s for s in servers}
    for line in access:
        span = by_trace[line["trace_id"]]
        assert line["span_id"] == span.span_id
        assert line["path"] == span.attributes["url.path"]
    errors = [line for line in lines if line["level"] == "error"]
    assert {line["trace_id"] for line in errors} == {failing.trace_id}
    assert any(line["msg"] == "something failed inside the request" for line in errors)


async def test_storage_calls_outside_a_request_are_not_traced(
    traced_app: WharfApp, receiver: OTLPReceiver
) -> None:
    await traced_app.registry.driver.put_content("/outside/request", b"x")
    await traced_app.aclose()
    assert receiver.spans == []


def test_tracing_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    script = f"""
import sys
from wharf.api.app import create_app
from wharf.config import Config, HTTPConfig, StorageConfig
config = Config(
    storage=StorageConfig(parameters={{"rootdirectory": {str(tmp_path)!r}}}),
    http=HTTPConfig(secret="s"),
)
app = create_app(config)
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""
    environ = {name: value for name, value in os.environ.items() if "OTEL" not in name}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environ, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.server
def test_workers_send_their_spans_and_log_their_trace_ids(receiver: OTLPReceiver) -> None:
    server = WharfServer(
        workers=2,
        config={"log": {"level": "info", "formatter": "json"}},
        env=_otel_environment(receiver),
    )
    with server:
        with httpx.Client(base_url=server.url) as http:
            for number in range(6):
                blob = f"blob {number}".encode()
                digest = "sha256:" + hashlib.sha256(blob).hexdigest()
                response = http.post(
                    "/v2/traced/blobs/uploads/", params={"digest": digest}, content=blob
                )
                assert response.status_code == 201
                assert http.head(f"/v2/traced/blobs/{digest}").status_code == 200
        # and the GET /v2/ that found the server up
        spans = receiver.wait_for(lambda spans: sum(s.kind == SERVER for s in spans) >= 13)
        text = server.log()
    servers = [s for s in spans if s.kind == SERVER and s.name != "GET /v2/"]
    assert len(servers) == 12
    assert {s.name for s in servers} == {
        "POST /v2/{name}/blobs/uploads/",
        "HEAD /v2/{name}/blobs/{digest}",
    }
    for span in servers:
        assert _children(spans, span), f"{span.name} has no storage span"
    assert {s.resource["service.name"] for s in servers} == {"registry-under-test"}
    assert len({s.resource["service.instance.id"] for s in servers}) == 1
    log = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [line for line in log if line.get("logger") == "wharf.access"]
    assert {line["trace_id"] for line in access if line["path"] != "/v2/"} == {
        s.trace_id for s in servers
    }
    assert any("tracing requests and storage calls" in line["msg"] for line in log)
