"""Whether and how to trace, read from the standard ``OTEL_*`` environment, importing nothing.

Distribution 3 configures tracing the same way (OpenTelemetry's own variables, an OTLP
exporter), but exports by default to ``localhost:4318`` and logs every failed export until
``OTEL_TRACES_EXPORTER=none`` is set. wharf traces only when told where to send:

- ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``: off;
- ``OTEL_TRACES_EXPORTER=otlp`` (and/or ``console``): on;
- unset, with ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: on;
- otherwise off, and then not one OpenTelemetry module is imported.

Everything else (endpoint, headers, timeout, sampler, batch sizes, service name, resource
attributes) the OpenTelemetry SDK reads from the environment itself. The protocol is
``http/protobuf`` unless ``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`` says ``grpc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wharf.config.sources import ConfigError

__all__ = ["EXPORTERS", "PROTOCOLS", "TracingSettings", "tracing_settings"]

#: ``OTEL_TRACES_EXPORTER`` values wharf understands.
EXPORTERS = ("otlp", "console", "none")
#: OTLP protocols, and the module of the exporter each needs.
PROTOCOLS = {
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
}


#: Where each protocol's exporter sends by default.
_DEFAULT_ENDPOINTS = {"http/protobuf": "http://localhost:4318", "grpc": "http://localhost:4317"}


@dataclass(frozen=True, slots=True)
class TracingSettings:
    exporters: tuple[str, ...]
    protocol: str = "http/protobuf"
    #: Where the OTLP exporter sends, as the variables say (for the start-up line).
    endpoint: str = _DEFAULT_ENDPOINTS["http/protobuf"]

    @property
    def modules(self) -> tuple[str, ...]:
        """The modules this setting imports: the SDK, and the OTLP exporter when used."""
        modules: tuple[str, ...] = ("opentelemetry.sdk.trace",)
        if "otlp" in self.exporters:
            modules += (PROTOCOLS[self.protocol],)
        return modules

    def describe(self) -> str:
        """``otlp over http/protobuf to http://collector:4318, console``."""
        names = [
            f"otlp over {self.protocol} to {self.endpoint}" if name == "otlp" else name
            for name in self.exporters
        ]
        return ", ".join(names)


def tracing_settings(environ: Mapping[str, str]) -> TracingSettings | None:
    """The tracing ``environ`` asks for, None when off; ConfigError for a value wharf cannot
    honour (an unknown exporter or protocol), naming the variable."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        exporters = tuple(dict.fromkeys(part.strip() for part in named.split(",") if part.strip()))
        for exporter in exporters:
            if exporter not in EXPORTERS:
                known = ", ".join(EXPORTERS)
                raise ConfigError(
                    f"OTEL_TRACES_EXPORTER: unknown exporter {exporter!r} (wharf knows {known})"
                )
        exporters = tuple(e for e in exporters if e != "none")
    elif environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    ):
        exporters = ("otlp",)
    else:
        exporters = ()
    if not exporters:
        return None
    variable = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    protocol = environ.get(variable, "").strip().lower()
    if not protocol:
        variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
        protocol = environ.get(variable, "").strip().lower() or "http/protobuf"
    if protocol not in PROTOCOLS:
        known = ", ".join(PROTOCOLS)
        raise ConfigError(f"{variable}: unsupported protocol {protocol!r} (wharf knows {known})")
    endpoint = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or _DEFAULT_ENDPOINTS[protocol]
    )
    return TracingSettings(exporters, protocol, endpoint)
