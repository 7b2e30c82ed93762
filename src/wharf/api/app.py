"""The ASGI application: routing, the one error handler, and the services' lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from wharf.api.context import AppContext
from wharf.api.http import (
    ZERO_COPY,
    ClientDisconnected,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    check_header_limits,
    error_response,
)
from wharf.api.operations import Operations
from wharf.api.response_cache import ResponseCaches
from wharf.api.routes import match_route
from wharf.api.token import token_route
from wharf.api.tus import TusEndpoint
from wharf.auth.factory import create_auth
from wharf.coherence.caches import RegistryCache
from wharf.config import Config
from wharf.errors import NameInvalid, RegistryError, Unavailable, Unknown, Unsupported
from wharf.memory import tune_allocator
from wharf.observability.context import note_actor, note_route
from wharf.reference import RepositoryName
from wharf.registry.catalog_index import keep_built
from wharf.registry.gc.guard import WriteGuard, create_coordination, hold_serving
from wharf.registry.gc.schedule import online_options, run_schedule
from wharf.registry.namespace import Registry
from wharf.registry.proxy.expiry import run_sweeps, sweep_interval
from wharf.registry.purge import run_purges
from wharf.registry.tus import TusUploads
from wharf.registry.upload_key import stored_upload_key
from wharf.storage.driver.base import DriverError
from wharf.storage.driver.factory import create_driver
from wharf.worker_environment import WorkerEnvironment

__all__ = ["WharfApp", "create_app"]

log = logging.getLogger("wharf.api")


_API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
_BASE_BODY = b"{}"


class WharfApp:
    def __init__(self, config: Config, environment: WorkerEnvironment | None = None) -> None:
        self.config = config
        self.environment = environment or WorkerEnvironment()
        driver = create_driver(config.storage)
        #: Metrics, notifications, and the change tokens shared with other processes.
        self.operations = Operations(config, self.environment)
        self.generations = self.operations.generations
        cache = RegistryCache(self.generations)
        self.hash_executor = ThreadPoolExecutor(
            max_workers=max(4, 2 * (os.cpu_count() or 1)), thread_name_prefix="wharf-hash"
        )
        registry = Registry(
            driver,
            cache,
            self.hash_executor,
            config.mirrors,
            tag_lookup_concurrency=config.storage.tag_concurrency_limit,
            validation=config.validation,
        )
        self.operations.attach(registry)
        # Decorated services (notifications reporting pulls) must see every pull.
        responses = ResponseCaches(manifests=not registry.middleware)
        self.operations.count_caches(manifest_responses=responses.manifests)
        secret = config.http.secret or self.environment.generated_secret or secrets.token_hex(32)
        prefix = config.http.prefix.rstrip("/")
        auth = create_auth(config.extra.get("auth"), secret=secret)
        self.context = AppContext(
            config,
            registry,
            self._upload_key,
            prefix,
            access=auth.controller,
            responses=responses,
            write_guard=None
            if config.storage.readonly
            else WriteGuard(create_coordination(config)),
        )
        #: Endpoints outside ``/v2`` (such as a token service), by exact path.
        self.extra_routes: dict[str, Callable[[AppContext, Request], Awaitable[Response]]] = {}
        if auth.token_service is not None:
            self.extra_routes[auth.token_service.path] = token_route(auth.token_service)
        #: The tus endpoint (``tus.enabled``), answering under its own path.
        self.tus: TusEndpoint | None = None
        if config.tus.enabled:
            uploads = TusUploads(
                registry,
                config.tus,
                guard=self.context.write_guard,
                count=self.operations.metrics.inc,
            )
            self.tus = TusEndpoint(self.context, config.tus, uploads)
        timeout = config.http.body_timeout
        self._body_timeout = None if timeout is None else timeout.total_seconds()
        self._extra_headers = [_API_VERSION] + [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, values in config.http.headers.items()
            for value in values
        ]
        self._background: list[asyncio.Task[None]] = []
        self._observed = self.operations.wrap(self._http)

    @property
    def registry(self) -> Registry:
        return self.context.registry

    async def _upload_key(self) -> bytes:
        # Distribution signs with the secret's bytes, so both accept each other's URLs.
        if self.config.http.secret:
            return self.config.http.secret.encode()
        return await stored_upload_key(self.registry.driver)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._observed(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        prefix = self.context.prefix
        if prefix:
            if not path.startswith(prefix + "/"):
                await self._not_found(send)
                return
            path = path[len(prefix) :]
        request = Request(scope, receive, path, self._body_timeout)
        head = scope["method"] == "HEAD"
        try:
            check_header_limits(scope["headers"])
            response = await self._dispatch(request, path)
        except RegistryError as error:
            response = error_response(error)
        except ClientDisconnected:
            return
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running past http.draintimeout (granian ends
            # the worker instead). The client hears that the registry is stopping rather
            # than of an internal error; what the request stored stays, and an upload
            # resumes on the next start.
            response = error_response(Unavailable(message="the registry is stopping"))
            with contextlib.suppress(Exception):
                await response.send(send, head=head, extra=self._extra_headers)
            return
        except DriverError as error:
            log.error("storage error on %s %s: %s", scope["method"], path, error)
            response = error_response(Unknown(message="storage error"))
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], path)
            response = error_response(Unknown())
        zero_copy = ZERO_COPY in scope.get("extensions", ())
        await response.send(send, head=head, extra=self._extra_headers, zero_copy=zero_copy)

    async def _dispatch(self, request: Request, path: str) -> Response:
        access = self.context.access
        if path in ("/v2/", "/v2"):
            note_route("base")
            if request.method not in ("GET", "HEAD"):
                raise Unsupported()
            if access is not None:
                await access.authorize(request.headers, ())
            return Response(200, _BASE_BODY, {"Content-Type": "application/json"})
        if self.tus is not None and self.tus.owns(path):
            return await self.tus(request, path)
        extra = self.extra_routes.get(path)
        if extra is not None:
            note_route("extra")
            return await extra(self.context, request)
        found = match_route(path)
        if found is None:
            if path.startswith("/v2/") and len(path) > 4096:
                raise NameInvalid(message="request path too long")
            return Response(404, b"404 page not found\n", {"Content-Type": "text/plain"})
        route, name, reference = found
        if name and self.registry.mirrors is not None:
            # A mirror's client names the upstream host it means (containerd sends ``ns``):
            # the namespace says which local repository that is, before access is checked.
            name = self.registry.mirrors.local_name(name, request.query_value("ns"))
        note_route(route.name, name)
        handler = route.methods.get(request.method)
        if handler is None:
            raise Unsupported({"method": request.method}, message="method not allowed")
        if access is not None:
            if name:
                RepositoryName(name)  # a scope names only valid repositories
            identity = await access.authorize(request.headers, route.accesses(request.method, name))
            note_actor(identity.name)
        return await handler(self.context, request, name, reference)

    async def _not_found(self, send: Send) -> None:
        response = Response(404, b"404 page not found\n", {"Content-Type": "text/plain"})
        await response.send(send, head=False, extra=self._extra_headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.start_background()
                except Exception as error:  # pragma: no cover - reported to the server
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start_background(self) -> None:
        self.operations.start()
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(hold_serving(self.config)))
        if not self.config.storage.readonly:
            self._background.append(loop.create_task(keep_built(self.registry.catalog.index)))
        purging = self.config.storage.upload_purging
        if purging.enabled and not self.config.storage.readonly:
            self._background.append(loop.create_task(self._purge_loop()))
        if self.config.storage.gc.enabled and not self.config.storage.readonly:
            self._background.append(loop.create_task(self._gc_loop()))
        if self.tus is not None and not self.config.storage.readonly:
            self._background.append(loop.create_task(self._tus_purge_loop(self.tus.uploads)))
        ttls = [m.ttl for m in self.config.mirrors if m.ttl is not None]
        if ttls and not self.config.storage.readonly:
            sweeps = run_sweeps(self.registry, sweep_interval(ttls))
            self._background.append(loop.create_task(sweeps))

    async def _gc_loop(self) -> None:
        # Every worker runs the schedule; the coordination's lease lets one collect a round.
        coordination = create_coordination(self.config)
        try:
            await run_schedule(
                self.registry.driver,
                coordination,
                online_options(self.config),
                self.config.storage.gc.interval.total_seconds(),
                generations=self.generations,
            )
        finally:
            await coordination.close()

    async def _purge_loop(self) -> None:
        # One process of all sharing the storage purges (a lease), after a random delay.
        registry = self.registry
        await run_purges(registry.driver, registry.catalog, self.config.storage.upload_purging)

    async def _tus_purge_loop(self, uploads: TusUploads) -> None:
        interval = self.config.tus.purge_interval.total_seconds()
        # Workers start together; spread their runs.
        await asyncio.sleep(secrets.randbelow(max(int(interval * 1000), 1)) / 1000)
        while True:
            try:
                purged = await uploads.purge()
                if purged:
                    log.info("purged %d expired tus uploads", purged)
            except Exception:
                log.exception("tus upload purge failed")
            await asyncio.sleep(max(interval, 0.5))

    async def aclose(self) -> None:
        await self.operations.aclose()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        if self.context.write_guard is not None:
            await self.context.write_guard.aclose()
        await self.registry.aclose()
        await self.registry.driver.close()
        self.hash_executor.shutdown(wait=False)
        self.generations.close()


def create_app(config: Config) -> WharfApp:
    """The app of a worker process, which the server launcher started."""
    tune_allocator()
    return WharfApp(config, WorkerEnvironment.read())
