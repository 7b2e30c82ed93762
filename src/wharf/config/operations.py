"""Typed settings for running wharf in production: ``http.debug``, ``notifications``, ``redis``
and ``health``, read from Distribution's keys.

The loader hands each section over as a reader (its ``_Section``); the functions here only
describe what the sections hold and which values are refused, so that a bad value stops wharf
at start with one line naming the key. Where Distribution leaves a value to a default in its
code, the same default is used here: an endpoint times out after 1s, backs off for 1s after
10 failures in a row; a health check runs every 10s and fails on its first failure.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeVar

__all__ = [
    "DebugConfig",
    "EndpointConfig",
    "FileCheckConfig",
    "HTTPCheckConfig",
    "HealthConfig",
    "NotificationsConfig",
    "RedisConfig",
    "SectionReader",
    "StorageCheckConfig",
    "TCPCheckConfig",
    "elements",
    "parse_debug",
    "parse_health",
    "parse_notifications",
    "parse_redis",
    "strings",
]

_T = TypeVar("_T")
_SECOND = timedelta(seconds=1)
_ACTIONS = ("pull", "push", "mount", "delete")


@dataclass(frozen=True, slots=True)
class DebugConfig:
    addr: str  # host:port of the debug listener
    prometheus_enabled: bool = True  # wharf serves /metrics unless told otherwise
    prometheus_path: str = "/metrics"


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    name: str
    url: str
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    timeout: timedelta = _SECOND
    threshold: int = 10
    backoff: timedelta = _SECOND
    ignored_media_types: tuple[str, ...] = ()
    ignored_actions: tuple[str, ...] = ()
    disabled: bool = False
    #: wharf's own: events kept for a slow endpoint before the oldest are dropped.
    queue_size: int = 10_000


@dataclass(frozen=True, slots=True)
class NotificationsConfig:
    endpoints: tuple[EndpointConfig, ...] = ()
    include_references: bool = False


@dataclass(frozen=True, slots=True)
class RedisConfig:
    addr: str  # host:port
    username: str = ""
    password: str = ""
    db: int = 0
    dial_timeout: timedelta = timedelta(seconds=5)
    read_timeout: timedelta = timedelta(seconds=3)
    write_timeout: timedelta = timedelta(seconds=3)
    max_idle: int = 16
    max_active: int = 64  # 0: no limit
    idle_timeout: timedelta = timedelta(seconds=300)
    tls: bool = False
    tls_certificate: str = ""
    tls_key: str = ""
    tls_client_cas: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        return self.addr.rpartition(":")[0].strip("[]") or "localhost"

    @property
    def port(self) -> int:
        return int(self.addr.rpartition(":")[2])


@dataclass(frozen=True, slots=True)
class StorageCheckConfig:
    enabled: bool = True  # Distribution's default is off; wharf checks its storage unless told
    interval: timedelta = timedelta(seconds=10)
    threshold: int = 1


@dataclass(frozen=True, slots=True)
class FileCheckConfig:
    file: str
    interval: timedelta = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class HTTPCheckConfig:
    uri: str
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    status_code: int = 200
    timeout: timedelta = timedelta(seconds=3)
    interval: timedelta = timedelta(seconds=10)
    threshold: int = 1


@dataclass(frozen=True, slots=True)
class TCPCheckConfig:
    addr: str
    timeout: timedelta = timedelta(seconds=3)
    interval: timedelta = timedelta(seconds=10)
    threshold: int = 1


@dataclass(frozen=True, slots=True)
class HealthConfig:
    storage_driver: StorageCheckConfig = field(default_factory=StorageCheckConfig)
    files: tuple[FileCheckConfig, ...] = ()
    http: tuple[HTTPCheckConfig, ...] = ()
    tcp: tuple[TCPCheckConfig, ...] = ()


class SectionReader(Protocol):
    """What the loader's sections offer (``wharf.config.load._Section``)."""

    @property
    def data(self) -> dict[Any, Any]: ...
    def key(self, name: str) -> str: ...
    def error(self, name: str, message: str) -> ValueError: ...
    def get(self, name: str) -> Any: ...
    def has(self, name: str) -> bool: ...
    def section(self, name: str) -> SectionReader: ...
    def element(self, name: str, index: int, data: Any) -> SectionReader: ...
    def mapping(self, name: str) -> dict[str, Any]: ...
    def string(self, name: str, default: str) -> str: ...
    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str: ...
    def boolean(self, name: str, default: bool) -> bool: ...
    def integer(self, name: str, default: int, *, minimum: int) -> int: ...
    def duration(self, name: str, default: _T, *, positive: bool = False) -> timedelta | _T: ...
    def unsupported(self, name: str, why: str) -> None: ...
    def finish(self) -> None: ...


# --- helpers ---------------------------------------------------------------------------------


def elements(section: SectionReader, name: str) -> list[SectionReader]:
    """The items of the list under ``name``, each as a section."""
    value = section.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise section.error(name, f"expected a list, got {type(value).__name__}")
    return [section.element(name, index, item) for index, item in enumerate(value)]


def strings(section: SectionReader, name: str) -> tuple[str, ...]:
    """A list of strings; a single string counts as a list of one."""
    value = section.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise section.error(name, "expected a list of strings")
    return tuple(value)


def _headers(section: SectionReader, name: str) -> dict[str, tuple[str, ...]]:
    headers: dict[str, tuple[str, ...]] = {}
    for header, value in section.mapping(name).items():
        values = value if isinstance(value, list) else [value]
        if not header or not all(isinstance(item, str | int | float) for item in values):
            raise section.error(name, f"header {header!r}: expected a list of strings")
        headers[header] = tuple(str(item) for item in values)
    return headers


def _url(section: SectionReader, name: str) -> str:
    url = section.string(name, "").strip()
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise section.error(name, f"must be an http or https URL, got {url!r}")
    return url


def _host_port(section: SectionReader, name: str, value: str) -> str:
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise section.error(name, f"must be host:port, got {value!r}")
    return value


def _positive(section: SectionReader, name: str, default: timedelta) -> timedelta:
    return section.duration(name, default, positive=True)


# --- sections --------------------------------------------------------------------------------


def parse_debug(section: SectionReader) -> DebugConfig | None:
    addr = section.string("addr", "").strip()
    prometheus = section.section("prometheus")
    enabled = prometheus.boolean("enabled", True)
    path = prometheus.string("path", "/metrics")
    prometheus.finish()
    section.finish()
    if not addr:
        return None
    if not path.startswith("/"):
        raise prometheus.error("path", f"must start with '/', got {path!r}")
    if addr.startswith(":"):
        addr = "0.0.0.0" + addr  # Go's ":5001": every interface
    return DebugConfig(_host_port(section, "addr", addr), enabled, path)


def parse_notifications(section: SectionReader) -> NotificationsConfig:
    events = section.section("events")
    include_references = events.boolean("includereferences", False)
    events.finish()
    endpoints = tuple(_endpoint(item) for item in elements(section, "endpoints"))
    names = [endpoint.name for endpoint in endpoints]
    for name in names:
        if names.count(name) > 1:
            raise section.error("endpoints", f"endpoint name {name!r} is used twice")
    section.finish()
    return NotificationsConfig(endpoints, include_references)


def _endpoint(section: SectionReader) -> EndpointConfig:
    name = section.string("name", "").strip()
    if not name:
        raise section.error("name", "every endpoint needs a name")
    defaults = EndpointConfig(name, "")
    ignore = section.section("ignore")
    ignored_types = strings(section, "ignoredmediatypes") + strings(ignore, "mediatypes")
    actions = strings(ignore, "actions")
    for action in actions:
        if action not in _ACTIONS:
            raise ignore.error("actions", f"unknown action {action!r}, use {', '.join(_ACTIONS)}")
    ignore.finish()
    endpoint = EndpointConfig(
        name=name,
        url=_url(section, "url"),
        headers=_headers(section, "headers"),
        timeout=_positive(section, "timeout", defaults.timeout),
        threshold=section.integer("threshold", defaults.threshold, minimum=1),
        backoff=_positive(section, "backoff", defaults.backoff),
        ignored_media_types=ignored_types,
        ignored_actions=actions,
        disabled=section.boolean("disabled", False),
        queue_size=section.integer("queuesize", defaults.queue_size, minimum=1),
    )
    section.finish()
    return endpoint


def parse_redis(section: SectionReader) -> RedisConfig | None:
    """None without ``addr`` (or ``addrs``): no Redis."""
    addr = section.string("addr", "").strip()
    addrs = strings(section, "addrs")
    if addrs:
        if len(addrs) > 1 or (addr and addr != addrs[0]):
            raise section.error("addrs", "one Redis server only (no Cluster or Sentinel)")
        addr = addrs[0].strip()
    if not addr:
        section.finish()
        return None
    _host_port(section, "addr", addr)
    defaults = RedisConfig(addr)
    pool = section.section("pool")
    max_idle = pool.integer("maxidle", defaults.max_idle, minimum=0)
    max_active = pool.integer("maxactive", defaults.max_active, minimum=0)
    idle_timeout = pool.duration("idletimeout", defaults.idle_timeout)
    pool.finish()
    tls = section.section("tls")
    tls_certificate = tls.string("certificate", "")
    tls_key = tls.string("key", "")
    tls_enabled = tls.boolean("enabled", bool(tls_certificate))
    client_cas = strings(tls, "clientcas")
    tls.finish()
    if bool(tls_certificate) != bool(tls_key):
        missing = "key" if tls_certificate else "certificate"
        raise tls.error(missing, "certificate and key go together")
    config = RedisConfig(
        addr=addr,
        username=section.string("username", ""),
        password=section.string("password", ""),
        db=section.integer("db", 0, minimum=0),
        dial_timeout=_positive(section, "dialtimeout", defaults.dial_timeout),
        read_timeout=_positive(section, "readtimeout", defaults.read_timeout),
        write_timeout=_positive(section, "writetimeout", defaults.write_timeout),
        # Distribution 3 names the pool settings differently; both are understood.
        max_idle=section.integer("maxidleconns", max_idle, minimum=0),
        max_active=section.integer("poolsize", max_active, minimum=0),
        idle_timeout=section.duration("connmaxidletime", idle_timeout),
        tls=tls_enabled,
        tls_certificate=tls_certificate,
        tls_key=tls_key,
        tls_client_cas=client_cas,
    )
    section.finish()
    return config


def parse_health(section: SectionReader) -> HealthConfig:
    storage = section.section("storagedriver")
    defaults = StorageCheckConfig()
    storage_check = StorageCheckConfig(
        enabled=storage.boolean("enabled", defaults.enabled),
        interval=_positive(storage, "interval", defaults.interval),
        threshold=storage.integer("threshold", defaults.threshold, minimum=1),
    )
    storage.finish()
    files = tuple(_file_check(item) for item in elements(section, "file"))
    http = tuple(_http_check(item) for item in elements(section, "http"))
    tcp = tuple(_tcp_check(item) for item in elements(section, "tcp"))
    section.finish()
    return HealthConfig(storage_check, files, http, tcp)


def _file_check(section: SectionReader) -> FileCheckConfig:
    path = section.string("file", "").strip()
    if not path:
        raise section.error("file", "a path is required")
    check = FileCheckConfig(path, _positive(section, "interval", timedelta(seconds=10)))
    section.unsupported("threshold", "a file check fails at once (Distribution ignores it too)")
    section.finish()
    return check


def _http_check(section: SectionReader) -> HTTPCheckConfig:
    defaults = HTTPCheckConfig("")
    check = HTTPCheckConfig(
        uri=_url(section, "uri"),
        headers=_headers(section, "headers"),
        status_code=section.integer("statuscode", 200, minimum=100),
        timeout=_positive(section, "timeout", defaults.timeout),
        interval=_positive(section, "interval", defaults.interval),
        threshold=section.integer("threshold", 1, minimum=1),
    )
    section.finish()
    return check


def _tcp_check(section: SectionReader) -> TCPCheckConfig:
    defaults = TCPCheckConfig("")
    check = TCPCheckConfig(
        addr=_host_port(section, "addr", section.string("addr", "").strip()),
        timeout=_positive(section, "timeout", defaults.timeout),
        interval=_positive(section, "interval", defaults.interval),
        threshold=section.integer("threshold", 1, minimum=1),
    )
    section.finish()
    return check
