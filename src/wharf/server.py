"""Run the ASGI app under uvicorn (default) or granian, one app per worker process.

uvicorn with httptools is the default by measurement (bench/FINDINGS.md §7): on this app it
served manifests and tag lists as fast or faster, and took request bodies sent in chunked
transfer encoding (how docker, podman and skopeo stream layers) at a third of granian's CPU
per byte. granian adds HTTP/2.

Worker processes build their own app from the same configuration, told what they need by
the environment the parent exports before they start (``wharf.worker_environment``). The
workers of one machine share their change tokens through a file named after the storage
(``wharf.coherence.shared``), which garbage collections and checks run from a shell find too.

The parent process binds the port before any worker starts (under granian, granian's parent
does), and only then announces where it listens: an address in use is one error line, and a
line saying wharf listens is true when it is read. The lines about limits, the secret and the
debug listener follow the announcement.

SIGTERM and SIGINT stop gracefully: no new connections, requests in flight finish (for at
most ``http.draintimeout`` when set), then the app's lifespan shutdown runs.

Before anything starts, the open-files soft limit is raised to the hard limit, for this
process and the workers it starts (``wharf.open_files``), and the connection cap per worker
(``http.maxconnections``) is derived from it unless configured.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import ipaddress
import logging
import math
import os
import secrets
import signal
import socket
import ssl
import stat
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, cast

from wharf import open_files
from wharf.config.load import DEFAULT_SOURCE, ConfigError, load_config
from wharf.config.model import Config, TLSConfig
from wharf.config.tls import openssl_ciphers
from wharf.logs import level_number, logging_config
from wharf.observability.debug_listener import bind_debug, debug_process, metrics_directory
from wharf.observability.tracing_settings import tracing_settings
from wharf.worker_environment import DEFAULT_APP_FACTORY, WorkerEnvironment

__all__ = [
    "DEFAULT_APP_FACTORY",
    "MAX_HTTP2_HEADERS",
    "ASGIApp",
    "ListenError",
    "Listener",
    "config_digest",
    "listener",
    "run",
    "worker_app",
    "worker_count",
]

#: Largest header block granian accepts on an HTTP/2 stream (access control's hardening).
MAX_HTTP2_HEADERS = 64 * 1024
#: uvicorn's default backlog, which each worker passes to listen() again.
_BACKLOG = 2048
#: What granian and uvicorn import in each worker: a factory, so the app is built there.
_WORKER_TARGET = "wharf.server:worker_app"

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]

log = logging.getLogger(__name__)


class ListenError(RuntimeError):
    """The server could not open its socket (address in use, not allowed, ...)."""


@dataclass(frozen=True, slots=True)
class Listener:
    host: str = ""
    port: int = 0
    uds: str | None = None
    tls: bool = False

    def __str__(self) -> str:
        if self.uds is not None:
            return f"unix:{self.uds}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def listener(config: Config) -> Listener:
    """Where the server will listen; a host name is resolved, as the servers need an IP."""
    http = config.http
    if http.net == "unix":
        return Listener(uds=os.path.abspath(http.addr), tls=http.tls is not None)
    host, port = http.bind_host, http.bind_port
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except OSError as exc:
            raise ConfigError(f"http.addr: cannot resolve {host!r}: {exc}") from exc
        host = str(infos[0][4][0])
    return Listener(host=host, port=port, tls=http.tls is not None)


def worker_count(config: Config) -> int:
    """``http.workers`` (0: one per core), but 1 for in-memory storage, which one process owns."""
    if config.storage.driver == "inmemory":
        return 1
    return config.http.workers or os.cpu_count() or 1


def config_digest(config: Config) -> str:
    return hashlib.sha256(repr(config).encode()).hexdigest()


def worker_app() -> ASGIApp:
    """Build this worker's app from the configuration the parent process exported."""
    environment = WorkerEnvironment.read()
    # Lenient: the parent has refused, or warned about, every unknown key already.
    config = load_config(environment.config_path or None, os.environ, lenient=True)
    expected = environment.config_digest
    if expected and config_digest(config) != expected:
        # A worker respawned after the file was edited would otherwise serve other settings
        # than its siblings and than the start-up line announced.
        raise RuntimeError(f"{config.source} changed since wharf started; restart wharf to use it")
    module_name, _, function = environment.app_factory.partition(":")
    factory: Callable[[Config], ASGIApp] = getattr(importlib.import_module(module_name), function)
    return factory(config)


class _Announcement:
    """Log lines held back until the port is bound, after the caller's announcement."""

    def __init__(self, announce: Callable[[], None]) -> None:
        self._announce = announce
        self._held: list[tuple[int, str, tuple[object, ...]]] | None = []

    def log(self, level: int, message: str, *args: object) -> None:
        if self._held is None:
            log.log(level, message, *args)
        else:
            self._held.append((level, message, args))

    def bound(self) -> None:
        """The port is bound: announce, then log what was held back (once)."""
        held, self._held = self._held, None
        if held is None:
            return
        self._announce()
        for level, message, args in held:
            log.log(level, message, *args)


def run(
    config: Config,
    *,
    app_factory: str = DEFAULT_APP_FACTORY,
    announce: Callable[[], None] = lambda: None,
) -> None:
    """Serve until SIGTERM or SIGINT; the caller has set up logging. ``announce`` is called
    once the port is bound, before any worker starts; ListenError when it cannot be."""
    notes = _Announcement(announce)
    workers = worker_count(config)
    wanted = config.http.workers or os.cpu_count() or 1
    if workers < wanted:
        notes.log(
            logging.INFO,
            "in-memory storage cannot be shared between processes: 1 worker, not %d",
            wanted,
        )
    max_connections = _connection_limits(config, notes)
    tracing = tracing_settings(os.environ)
    if tracing is not None:
        notes.log(logging.INFO, "tracing requests and storage calls: %s", tracing.describe())
    with contextlib.ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():
            stack.enter_context(_stop_early_on_sigterm())
        sock = None
        if config.http.server == "uvicorn":
            sock = stack.enter_context(_listening_socket(listener(config)))
        else:
            # granian binds itself, after lines of its own: an address in use is found first.
            with _listening_socket(listener(config)):
                pass
        client_ca = stack.enter_context(_client_ca_bundle(config.http.tls))
        generated = ""
        if not config.http.secret:
            notes.log(
                logging.WARNING,
                "no http.secret: upload URLs are signed with a key kept in the storage, and "
                "anything else that derives from the secret changes at every start",
            )
            generated = secrets.token_hex(32)
        environment = WorkerEnvironment(
            config_path="" if config.source == DEFAULT_SOURCE else config.source,
            config_digest=config_digest(config),
            app_factory=app_factory,
            workers=workers,
            generated_secret=generated,
            instance_id=str(uuid.uuid4()),
            metrics_dir=(
                stack.enter_context(metrics_directory()) if config.http.debug is not None else ""
            ),
        )
        stack.enter_context(_environment(environment.exported()))
        if config.http.debug is not None:
            stack.enter_context(_debug_listener(config, notes))
        if sock is not None:
            notes.bound()
            _run_uvicorn(config, workers, client_ca, max_connections, sock)
        else:
            _run_granian(config, workers, client_ca, max_connections, notes.bound)


def _connection_limits(config: Config, notes: _Announcement) -> int:
    """Raise the open-files limit, log it with the limits on connections; the cap per worker."""
    http = config.http
    files = open_files.raise_limit()
    if files.error:
        notes.log(
            logging.WARNING,
            "cannot raise the open-files limit to %d: %s",
            files.hard,
            files.error,
        )
    max_connections = http.max_connections or open_files.default_max_connections(files.limit)
    idle = _seconds(http.idle_timeout)
    if http.server == "granian":
        idle = f"{_seconds(http.header_timeout)} (granian's header timeout, HTTP/1 only)"
    notes.log(
        logging.INFO,
        "open files: %s; at most %d connections per worker, request heads within %s, "
        "idle connections closed after %s",
        files,
        max_connections,
        _seconds(http.header_timeout),
        idle,
    )
    if not open_files.fits(max_connections, files.limit):
        notes.log(
            logging.WARNING,
            "http.maxconnections %d may need more open files than the limit (%d): past it, "
            "accepting connections fails for every client",
            max_connections,
            files.limit,
        )
    return max_connections


def _seconds(duration: timedelta) -> str:
    return f"{duration.total_seconds():g}s"


@contextlib.contextmanager
def _debug_listener(config: Config, notes: _Announcement) -> Iterator[None]:
    """/metrics and /debug/health on ``http.debug.addr``, served by a process of its own."""
    assert config.http.debug is not None
    addr = config.http.debug.addr
    try:
        sock = bind_debug(config.http.debug)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {addr} (http.debug.addr): {reason}") from None
    with debug_process(sock, dict(os.environ)):
        notes.log(logging.INFO, "debug listener on %s: /metrics, /debug/health", addr)
        yield


def _drain_seconds(config: Config) -> int | None:
    drain = config.http.drain_timeout
    # Both servers take whole seconds, and granian reads 0 as "no limit".
    return None if drain is None else max(1, math.ceil(drain.total_seconds()))


def _run_granian(
    config: Config,
    workers: int,
    client_ca: str | None,
    max_connections: int,
    bound: Callable[[], None],
) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.log import LogLevels

    where = listener(config)
    tls = config.http.tls
    tls_options: dict[str, Any] = {}
    if tls is not None:
        # The loader refused what granian cannot do: TLS below 1.2, cipher suites, optional
        # client certificates.
        minimum = SSLProtocols.tls13 if tls.minimum_tls == "tls1.3" else SSLProtocols.tls12
        tls_options = {
            "ssl_cert": Path(tls.certificate),
            "ssl_key": Path(tls.key),
            "ssl_protocol_min": minimum,
            "ssl_ca": Path(client_ca) if client_ca else None,
            "ssl_client_verify": client_ca is not None,
        }
    # HTTP/2 as Distribution offers it: over TLS unless http2.disabled, in clear (h2c) only
    # when asked.
    http2 = config.http.h2c_enabled if tls is None else not config.http.http2_disabled
    server = Granian(
        _WORKER_TARGET,
        factory=True,
        address=where.host or "0.0.0.0",
        port=where.port,
        uds=Path(where.uds) if where.uds else None,
        interface=Interfaces.ASGI,  # with lifespan
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.auto if http2 else HTTPModes.http1,
        # hyper's header timeout also bounds how long a kept-alive HTTP/1 connection waits
        # for its next request: granian has no idle timeout of its own.
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(config.http.header_timeout.total_seconds() * 1000))
        ),
        # Hardening: HTTP/1 keeps hyper's limits (about 400 KiB and 100 header fields, then
        # 431); HTTP/2 would otherwise accept 16 MiB of headers per request.
        http2_settings=HTTP2Settings(max_headers_size=MAX_HTTP2_HEADERS),
        # Connections per worker; past them granian stops accepting (they wait in the listen
        # backlog) rather than closing idle ones as wharf's uvicorn protocol does.
        backpressure=max_connections,
        websockets=False,
        log_level=LogLevels(config.log.level),
        log_dictconfig=logging_config(config.log),
        respawn_failed_workers=True,
        workers_kill_timeout=_drain_seconds(config),
        **tls_options,
    )
    os.register_at_fork(after_in_child=_default_stop_signals)
    # granian's parent binds (on Linux, checks that it can bind, each worker then binding
    # with SO_REUSEPORT) before it runs its startup hooks and starts the workers.
    server.on_startup(bound)
    try:
        server.serve()
    except RuntimeError as exc:
        # granian reports a socket it cannot bind as a RuntimeError from Rust ("Address
        # already in use (os error 98)"), with a Rust backtrace when RUST_BACKTRACE is set.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "os error" not in reason and "address" not in reason.lower():
            raise
        raise ListenError(f"cannot listen on {where}: {reason}") from None
    except SystemExit as exc:
        # When the stop signal reaches the workers directly (kill of the process group,
        # systemd), they may exit before granian marks them as stopped on purpose; granian
        # then reports failure although everything stopped as asked.
        if exc.code == 1 and server.interrupt_signal:
            return
        raise


def _default_stop_signals() -> None:
    # A forked granian worker inherits the parent's Python handler for SIGTERM, which only
    # flags the parent's server object: a signal arriving before the worker installs its own
    # handler would be swallowed, and the parent would wait for that worker for ever. Until
    # then, a stop signal ends the worker at once (it is not serving anything yet).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_uvicorn(
    config: Config,
    workers: int,
    client_ca: str | None,
    max_connections: int,
    sock: socket.socket,
) -> None:
    import asyncio

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from wharf.uvicorn_http import ConnectionLimits, LimitedHttpToolsProtocol

    where = listener(config)
    tls = config.http.tls
    options: dict[str, Any] = {}
    if where.uds is None:  # for uvicorn's own log line; wharf bound the socket
        options.update(host=where.host or "0.0.0.0", port=where.port)
    if tls is not None:
        verify = ssl.CERT_NONE
        if client_ca is not None:
            optional = tls.client_auth == "verify-client-cert-if-given"
            verify = ssl.CERT_OPTIONAL if optional else ssl.CERT_REQUIRED
        ciphers = openssl_ciphers(tls)
        # Only TLS 1.3 suites named: TLS 1.2 would have none, as in Go.
        minimum = "tls1.3" if tls.cipher_suites and not ciphers else tls.minimum_tls
        options.update(
            ssl_certfile=tls.certificate,
            ssl_keyfile=tls.key,
            ssl_ca_certs=client_ca,
            ssl_cert_reqs=verify,
            ssl_context_factory=partial(_uvicorn_tls_context, minimum=minimum),
        )
        if ciphers:
            options["ssl_ciphers"] = ciphers
    limits = ConnectionLimits(
        header_timeout=config.http.header_timeout.total_seconds(),
        max_connections=max_connections,
    )
    # httptools, with limits on the request head and on connections. uvicorn builds each
    # connection's protocol by calling this, as it would the class; each worker process
    # receives its own copy.
    protocol = cast("type[asyncio.Protocol]", partial(LimitedHttpToolsProtocol, limits=limits))
    settings = uvicorn.Config(
        _WORKER_TARGET,
        factory=True,
        workers=workers,
        loop="uvloop",
        http=protocol,
        ws="none",
        lifespan="on",
        log_config=logging_config(config.log),
        log_level=level_number(config.log.level),
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the app reads X-Forwarded-* itself, the same under both servers
        # uvicorn counts whole seconds.
        timeout_keep_alive=max(1, math.ceil(config.http.idle_timeout.total_seconds())),
        timeout_graceful_shutdown=_drain_seconds(config),
        **options,
    )
    # What uvicorn.run does, with the socket bound here instead of by uvicorn.
    server = uvicorn.Server(settings)
    try:
        if workers > 1:
            Multiprocess(settings, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    if workers == 1 and not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE: the app did not start


@contextlib.contextmanager
def _listening_socket(where: Listener) -> Iterator[socket.socket]:
    """The server's socket, bound and listening, for the workers to inherit; ListenError
    when it cannot be (an address in use, a port below 1024, ...)."""
    if where.uds is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(where.uds).st_mode):
                os.unlink(where.uds)  # left by a process that died
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in where.host else socket.AF_INET)
        # As uvicorn binds: an address in TIME_WAIT is no obstacle, one listened on is.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            if where.uds is not None:
                sock.bind(where.uds)
                os.chmod(where.uds, 0o666)  # as uvicorn leaves it
            else:
                sock.bind((where.host or "0.0.0.0", where.port))
            sock.listen(_BACKLOG)
        except OSError as exc:
            raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        sock.set_inheritable(True)
        yield sock
    finally:
        sock.close()
        if where.uds is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where.uds)


_TLS_VERSIONS = {
    "tls1.0": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}


def _uvicorn_tls_context(
    _config: object, default: Callable[[], ssl.SSLContext], *, minimum: str
) -> ssl.SSLContext:
    context = default()
    context.minimum_version = _TLS_VERSIONS[minimum]
    return context


@contextlib.contextmanager
def _client_ca_bundle(tls: TLSConfig | None) -> Iterator[str | None]:
    """The servers take one CA file; several ``clientcas`` are concatenated into one."""
    if tls is None or not tls.client_cas:
        yield None
        return
    if len(tls.client_cas) == 1:
        yield tls.client_cas[0]
        return
    fd, path = tempfile.mkstemp(prefix="wharf-clientcas-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as bundle:
            for name in tls.client_cas:
                bundle.write(Path(name).read_bytes().rstrip(b"\n") + b"\n")
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _stop_early_on_sigterm() -> Iterator[None]:
    """Until the server installs its own handler, SIGTERM still removes our files."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
