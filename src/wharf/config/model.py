"""Typed configuration: frozen dataclasses mirroring Distribution's ``config.yml``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from wharf.config.middleware import MiddlewareConfig
from wharf.config.mirrors import MirrorConfig
from wharf.config.operations import DebugConfig, HealthConfig, NotificationsConfig, RedisConfig
from wharf.config.tus import TusConfig
from wharf.config.validation import ValidationConfig

__all__ = [
    "CatalogConfig",
    "Config",
    "GcConfig",
    "HTTPConfig",
    "LogConfig",
    "StorageConfig",
    "TLSConfig",
    "UploadPurgingConfig",
]


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"  # error | warn | info | debug
    formatter: str = "text"  # text | json
    fields: dict[str, Any] = field(default_factory=dict)
    access_log: bool = True  # one info line per request (log.accesslog.disabled turns it off)


@dataclass(frozen=True, slots=True)
class UploadPurgingConfig:
    enabled: bool = True
    age: timedelta = timedelta(hours=168)
    interval: timedelta = timedelta(hours=24)
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class GcConfig:
    """``storage.gc``, wharf's own section (Distribution has none): online garbage collection."""

    enabled: bool = False  # collect every ``interval`` while serving
    interval: timedelta = timedelta(hours=24)
    #: Blobs, links and revisions younger than this are never collected online.
    grace: timedelta = timedelta(hours=1)
    delete_untagged: bool = False
    #: Local directory through which collector and writers coordinate when ``redis`` is not
    #: configured; empty: one derived from the storage, under /dev/shm.
    lockdir: str = ""


@dataclass(frozen=True, slots=True)
class StorageConfig:
    driver: str = "filesystem"  # filesystem | inmemory | s3 | azure | gcs | swift
    parameters: dict[str, Any] = field(default_factory=lambda: {"rootdirectory": "./wharf-data"})
    delete_enabled: bool = False
    readonly: bool = False
    upload_purging: UploadPurgingConfig = field(default_factory=UploadPurgingConfig)
    redirect_disabled: bool = False
    cache_blobdescriptor: str | None = None  # inmemory | redis
    gc: GcConfig = field(default_factory=GcConfig)
    #: ``storage.tag.concurrencylimit``: tags read at once when looking for those pointing at
    #: a manifest (on a delete); 0: wharf's default.
    tag_concurrency_limit: int = 0
    #: ``middleware.storage``: the enabled storage middleware, innermost first.
    middleware: tuple[MiddlewareConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class TLSConfig:
    certificate: str
    key: str
    client_cas: tuple[str, ...] = ()
    minimum_tls: str = "tls1.2"
    #: What is asked of clients when ``client_cas`` is set (Distribution 3's ``clientauth``).
    client_auth: str = "require-and-verify-client-cert"
    #: Distribution's (Go's) names of the TLS 1.2 cipher suites allowed; empty: the defaults.
    cipher_suites: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HTTPConfig:
    addr: str = ":5000"
    net: str = "tcp"
    secret: str = ""  # empty: a random secret per start (uploads then need a shared secret)
    prefix: str = ""
    host: str = ""
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tls: TLSConfig | None = None
    workers: int = 0  # 0: one per core (forced to 1 on in-memory storage)
    server: str = "uvicorn"  # uvicorn | granian (HTTP/2)
    relative_urls: bool = False  # Location headers without scheme and host
    #: How long a stop waits for requests in flight; None waits for all of them.
    drain_timeout: timedelta | None = None
    #: ``http.debug``: the listener for /metrics and /debug/health; None: no debug listener.
    debug: DebugConfig | None = None
    #: How long a request body may stall between two reads before the request is dropped
    #: (408), so a client that stops sending mid-body cannot hold a worker; None: no limit.
    body_timeout: timedelta | None = timedelta(seconds=60)
    #: How long a request's head (request line and headers) may take to arrive, counted from
    #: the connection's opening, or on a kept-alive connection from the head's first byte;
    #: past it the connection is closed, so that unfinished heads cannot pile up.
    header_timeout: timedelta = timedelta(seconds=20)
    #: How long a kept-alive connection may wait for its next request. Clients reuse
    #: connections between the layers of a pull, so it is longer than most servers' default.
    idle_timeout: timedelta = timedelta(seconds=75)
    #: Connections one worker keeps open at most; 0: derived from the open-files limit.
    max_connections: int = 0
    #: ``http.http2.disabled``: HTTP/1.1 only over TLS (HTTP/2 needs granian anyway).
    http2_disabled: bool = False
    #: ``http.h2c.enabled``: HTTP/2 without TLS (granian only); off, as in Distribution.
    h2c_enabled: bool = False

    @property
    def bind_host(self) -> str:
        host, _, _ = self.addr.rpartition(":")
        return host.strip("[]") or "0.0.0.0"

    @property
    def bind_port(self) -> int:
        return int(self.addr.rpartition(":")[2])


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    max_entries: int = 1000


@dataclass(frozen=True, slots=True)
class Config:
    version: str = "0.1"
    log: LogConfig = field(default_factory=LogConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    #: Sections kept raw for the subsystem that reads them (``auth``) or that is still to come
    #: (``wharf.config.load.PENDING_SECTIONS``).
    extra: dict[str, Any] = field(default_factory=dict)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    redis: RedisConfig | None = None
    health: HealthConfig = field(default_factory=HealthConfig)
    #: The pull-through cache: ``mirrors`` in order, then Distribution's ``proxy``.
    mirrors: tuple[MirrorConfig, ...] = ()
    #: Which references of a pushed manifest must already be in the repository.
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    #: wharf's own tus endpoint (off unless enabled).
    tus: TusConfig = field(default_factory=TusConfig)
    #: Where the configuration came from, for the first log line.
    source: str = "defaults"
