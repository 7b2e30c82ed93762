"""The optional parts of the distribution, and a check that a configuration has what it uses.

``pip install wharf-registry`` serves a filesystem (or in-memory) registry with htpasswd or
token auth; each extra adds one capability::

    s3        storage.s3                               boto3
    azure     storage.azure                            azure-storage-blob, azure-identity
    gcs       storage.gcs                              google-auth (tokens; requests go over httpx)
    redis     the redis section                        redis
    granian   http.server: granian                     granian
    tracing   OTEL_* asking for traces                 opentelemetry-sdk, its OTLP exporter
    all       every extra above

Those modules are imported where they are used, never at the top of a module the core
imports. ``wharf serve`` (and the commands that open the storage) call :func:`check` in the
parent process, before any worker starts: a configuration that needs a missing extra stops
with one line naming the extra to install, instead of a traceback in every worker.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wharf.config.model import Config
from wharf.config.sources import ConfigError
from wharf.observability.tracing_settings import tracing_settings
from wharf.storage.driver.factory import DRIVER_EXTRAS

__all__ = [
    "DISTRIBUTION",
    "MissingExtra",
    "Requirement",
    "check",
    "exceptions_of",
    "installed",
    "requirements",
]

#: The name wharf is published under (the import name and the command are ``wharf``).
DISTRIBUTION = "wharf-registry"


class MissingExtra(ConfigError):
    """The configuration uses a part of wharf whose packages are not installed."""


@dataclass(frozen=True, slots=True)
class Requirement:
    #: What in the configuration needs it, as the error names it.
    what: str
    #: A module the extra installs, looked for without importing it.
    module: str
    #: The extra of :data:`DISTRIBUTION`; empty when a package outside the extras is needed.
    extra: str = ""
    #: The package to install when no extra brings it.
    package: str = ""

    def install(self) -> str:
        if self.extra:
            return f"pip install '{DISTRIBUTION}[{self.extra}]'"
        return f"pip install {self.package}"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (its parent packages are imported to find out)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def exceptions_of(module: str, name: str) -> tuple[type[Exception], ...]:
    """``(module.name,)`` once ``module`` has been imported, else ``()``: the errors of an
    optional package, which nothing can raise before something imported it. Meant for an
    ``except`` clause, whose expression is only evaluated when an exception arrives."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return ()
    error: type[Exception] = getattr(loaded, name)
    return (error,)


def requirements(config: Config, environ: Mapping[str, str]) -> Iterator[Requirement]:
    """What ``config`` and the ``OTEL_*`` variables of ``environ`` need beyond the core."""
    driver = config.storage.driver
    if driver in DRIVER_EXTRAS:
        extra, module = DRIVER_EXTRAS[driver]
        yield Requirement(f"storage driver {driver!r}", module, extra)
    if config.redis is not None:
        yield Requirement("the redis section", "redis", "redis")
    if config.http.server == "granian":
        yield Requirement("http.server: granian", "granian", "granian")
    tracing = tracing_settings(environ)
    if tracing is not None:
        sdk, *exporters = tracing.modules
        what = f"tracing (OTEL_TRACES_EXPORTER={','.join(tracing.exporters)})"
        yield Requirement(what, sdk, "tracing")
        for module in exporters:
            if tracing.protocol == "grpc":
                package = "opentelemetry-exporter-otlp-proto-grpc"
                yield Requirement("tracing over OTLP/gRPC", module, package=package)
            else:
                yield Requirement(what, module, "tracing")


def check(config: Config, environ: Mapping[str, str]) -> None:
    """MissingExtra (one line) for the first requirement of ``config`` not installed;
    ConfigError for ``OTEL_*`` values wharf cannot honour."""
    for requirement in requirements(config, environ):
        if not installed(requirement.module):
            raise MissingExtra(
                f"{requirement.what} needs {requirement.module.partition('.')[0]}, which is "
                f"not installed: {requirement.install()}"
            )
