"""Change tokens shared by every instance through Redis: a local mirror kept exact by a read
barrier, so a tag moved or deleted through one instance is never served stale by another.

Each worker process keeps its tokens in memory (the slots of :class:`Generations`, read
synchronously on the hot path as before) and subscribes to one Redis channel. A durable write
changes the local token at once and PUBLISHes the repository's name; every subscriber changes
its own token for that name when the message arrives. The values need not agree between
processes, only change together.

Why no request is served stale (the read barrier). Redis sends everything on one connection in
the order it was produced. Before a request reads any cache, its process sends a PING on its
subscription connection and waits for the PONG (one PING serves every request that arrived in
the meantime, so under load it costs one round trip per batch, not per request). Suppose
instance A answered a PUT or DELETE: A's PUBLISH was acknowledged by Redis before A sent its
response (``settle``: the response waits for it), so before the client sent its next request to
instance B, so before B sent its PING. Redis therefore queued the message on B's connection
before the PONG, and B applies messages in order: by the time the PONG resolves the barrier,
B's token for the repository has changed and every entry cached under the old one is dead.
Network delays anywhere do not matter, only the order on each connection.

When the order cannot be relied on, nothing is served from the caches: while the subscription
is down (and until it is up again and subscribed), ``token`` returns a new random token on
every call, so every read goes to storage. Messages missed while it was down are covered by
changing every token when it comes back. A PONG that does not come within ``readtimeout``
drops the connection the same way. A PUBLISH that fails is retried in the background until
Redis takes it; a manifest or tag write whose PUBLISH fails answers 503 meanwhile (the change is
stored, but another instance could still serve what it replaced; retrying is safe).

The subscription is a connection of its own (``redis_subscription``: every lost connection is
known, every frame applied as it is read); publishing goes through redis-py's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from wharf.coherence.generations import Generations, Token
from wharf.coherence.redis_subscription import ReplyError, Subscription, command, subscribe
from wharf.config.operations import RedisConfig
from wharf.observability.context import CURRENT
from wharf.observability.metrics import Sample, WorkerMetrics

__all__ = ["EVERYTHING", "RedisGenerations", "channel_name"]

log = logging.getLogger("wharf.redis")

#: The message that changes every token (garbage collection, a reconnect elsewhere).
EVERYTHING = "*"
_RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
#: Idle seconds after which the subscription is pinged, to notice a dead connection early.
_HEARTBEAT = 5.0


def channel_name(config: RedisConfig) -> str:
    # Channels are not scoped by database: the number is part of the name instead.
    return f"wharf:{config.db}:changes"


class RedisGenerations(Generations):
    """:class:`Generations` whose changes reach every process subscribed to the channel."""

    def __init__(self, config: RedisConfig, metrics: WorkerMetrics | None = None) -> None:
        super().__init__(None)  # this process's mirror
        self.config = config
        self._metrics = metrics or WorkerMetrics()
        self._metrics.collect(self._samples)
        self._channel = channel_name(config)
        self._trusted = False
        self._client: redis.Redis | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._unsent: set[str] = set()
        self._connection: Subscription | None = None
        self._next: asyncio.Future[None] | None = None
        #: PINGs sent and not answered yet: (sequence, loop time sent, waiters)
        self._sent: deque[tuple[int, float, asyncio.Future[None]]] = deque()
        self._barriers = 0
        self._sequence = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._resending: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    # -- the Generations interface -------------------------------------------------------------

    def token(self, repository: str) -> Token:
        if not self._trusted:
            return secrets.randbits(64), 0  # never seen again: nothing is served from a cache
        return super().token(repository)

    def epoch(self) -> int:
        return super().epoch() if self._trusted else secrets.randbits(64)

    def changed(self, repository: str) -> None:
        super().changed(repository)
        self._announce(repository)

    def changed_everything(self) -> None:
        super().changed_everything()
        self._announce(EVERYTHING)

    # -- announcing ---------------------------------------------------------------------------

    def _announce(self, name: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._unsent.add(name)  # outside the event loop: the retry task sends it
            return
        task = loop.create_task(self._publish(name))
        self._publishing.add(task)
        task.add_done_callback(self._published)
        request = CURRENT.get()
        if request is not None:
            if request.announcements is None:
                request.announcements = []
            request.announcements.append(task)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failure is in _unsent and will be sent again

    async def _publish(self, name: str) -> None:
        try:
            async with asyncio.timeout(self._deadline()):
                await self._redis().publish(self._channel, name)
        except (redis.RedisError, OSError, TimeoutError) as error:
            self._unsent.add(name)
            self._metrics.inc("wharf_redis_errors_total", operation="publish")
            raise ConnectionError(f"cannot publish to Redis: {error}") from error

    def _deadline(self) -> float:
        config = self.config
        return (config.dial_timeout + config.write_timeout + config.read_timeout).total_seconds()

    async def settle(self, announcements: list[Awaitable[None]]) -> None:
        """Return once ``announcements`` (publishes) have reached Redis; raise if one has not."""
        results = await asyncio.gather(*announcements, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _resend(self) -> None:
        names, self._unsent = self._unsent, set()
        if EVERYTHING in names:
            names = {EVERYTHING}
        await asyncio.gather(*(self._publish(name) for name in names))

    def _redis(self) -> redis.Redis:
        if self._client is None:
            config = self.config
            self._client = redis.Redis(
                host=config.host,
                port=config.port,
                db=config.db,
                username=config.username or None,
                password=config.password or None,
                socket_timeout=config.read_timeout.total_seconds(),
                socket_connect_timeout=config.dial_timeout.total_seconds(),
                max_connections=config.max_active or None,
                ssl=config.tls,
                ssl_certfile=config.tls_certificate or None,
                ssl_keyfile=config.tls_key or None,
                ssl_ca_certs=config.tls_client_cas[0] if config.tls_client_cas else None,
                # One quick retry covers a pooled connection the server closed; more would
                # only hold the request (the caller retries the whole publish later).
                retry=Retry(NoBackoff(), 1),
            )
        return self._client

    # -- the read barrier ---------------------------------------------------------------------

    async def barrier(self) -> None:
        """Return once every change published before this call has been applied here (or
        at once while the subscription is down: the tokens are not trusted then)."""
        if not self._trusted:
            return
        await (self._next or self._ping_soon())

    def _ping(self) -> None:
        future, self._next = self._next, None
        if future is None:
            return
        connection = self._connection
        if connection is None or not self._trusted:
            future.set_result(None)
            return
        self._sequence += 1
        self._sent.append((self._sequence, asyncio.get_running_loop().time(), future))
        connection.write(command(b"PING", b"%d" % self._sequence))
        self._barriers += 1

    def _check_late(self) -> None:
        """Called now and then: a PONG overdue means the connection cannot be trusted."""
        if not self._sent:
            return
        waited = asyncio.get_running_loop().time() - self._sent[0][1]
        if waited > self.config.read_timeout.total_seconds():
            log.warning("no answer from Redis within readtimeout: reconnecting")
            self._metrics.inc("wharf_redis_errors_total", operation="barrier")
            self._distrust()
            if self._connection is not None:
                self._connection.close()

    def _pong(self, sequence: int) -> None:
        while self._sent and self._sent[0][0] <= sequence:
            future = self._sent.popleft()[2]
            if not future.done():
                future.set_result(None)

    def _distrust(self) -> None:
        self._trusted = False
        for _, _, future in self._sent:
            if not future.done():
                future.set_result(None)  # the request goes on, uncached
        self._sent.clear()
        if self._next is not None and not self._next.done():
            self._next.set_result(None)
        self._next = None

    # -- the subscription ---------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._subscribe_forever()))
        self._tasks.append(loop.create_task(self._maintain()))

    async def wait_subscribed(self) -> bool:
        """Wait (at most ``dialtimeout``) for the subscription; whether it is up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.dial_timeout.total_seconds()):
                await self._connected.wait()
        return self._trusted

    async def _subscribe_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._subscription()
                failures = 0
            except (OSError, ConnectionError, ReplyError, TimeoutError) as error:
                if failures == 0:
                    log.warning("Redis subscription lost: %s; caches bypassed meanwhile", error)
                self._metrics.inc("wharf_redis_errors_total", operation="subscribe")
                failures += 1
            finally:
                self._distrust()
                self._connected.clear()
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None
            await asyncio.sleep(_RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)])

    async def _subscription(self) -> None:
        """Subscribe, trust the tokens while subscribed, return when the connection is lost."""
        connection = await subscribe(self.config, self._channel, self._apply)
        self._connection = connection
        # Changes published while we were not subscribed are lost: change every token.
        Generations.changed_everything(self)
        self._trusted = True
        self._connected.set()
        log.info("Redis subscription to %s at %s up", self._channel, self.config.addr)
        await connection.closed

    def _apply(self, frame: object) -> None:
        if not isinstance(frame, list) or not frame:
            return
        kind = frame[0]
        if kind == b"message" and len(frame) == 3 and isinstance(frame[2], bytes):
            name = frame[2].decode("utf-8", "replace")
            if name == EVERYTHING:
                Generations.changed_everything(self)
            else:
                Generations.changed(self, name)
        elif kind == b"pong" and len(frame) == 2 and isinstance(frame[1], bytes):
            with contextlib.suppress(ValueError):
                self._pong(int(frame[1]))

    async def _maintain(self) -> None:
        """Watch for overdue PONGs, heartbeat an idle subscription, and send again what
        could not be published."""
        tick = min(0.5, self.config.read_timeout.total_seconds() / 4)
        idle = 0.0
        while True:
            await asyncio.sleep(tick)
            self._check_late()
            idle = 0.0 if self._sent else idle + tick
            if self._trusted and idle >= _HEARTBEAT:
                idle = 0.0
                self._ping_soon()
            if self._unsent and (self._resending is None or self._resending.done()):
                self._resending = asyncio.get_running_loop().create_task(self._resend_quietly())

    async def _resend_quietly(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._resend()

    def _ping_soon(self) -> asyncio.Future[None]:
        """The future the next PING resolves; the PING goes out at the end of this turn of
        the event loop, so every request arriving meanwhile shares it."""
        if self._next is None:
            loop = asyncio.get_running_loop()
            self._next = loop.create_future()
            loop.call_soon(self._ping)
        return self._next

    def _samples(self) -> list[Sample]:
        return [("wharf_redis_barriers_total", {}, float(self._barriers))]

    async def aclose(self) -> None:
        if self._resending is not None:
            self._tasks.append(self._resending)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.settle(list(self._publishing))
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self.close()
