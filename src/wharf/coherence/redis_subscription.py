"""One Redis subscription, spoken directly in RESP2 over an asyncio protocol.

``redis_tokens`` needs two things redis-py's PubSub does not give: to know of every lost
connection (PubSub reconnects and resubscribes by itself, and the messages published in
between are silently lost), and to apply each message and PONG the moment it is read, in
order, without a task switch per frame (a read barrier waits on a PONG on the hot path).
Messages and PONGs are handed to ``on_frame`` from ``data_received``, synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable
from typing import cast

from wharf.config.operations import RedisConfig

__all__ = ["ReplyError", "Subscription", "command", "subscribe"]


class ReplyError(Exception):
    """Redis answered with an error (``-ERR ...``)."""


class _Incomplete:
    pass


_INCOMPLETE = _Incomplete()


def command(*parts: bytes) -> bytes:
    encoded = [b"*%d\r\n" % len(parts)]
    for part in parts:
        encoded.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(encoded)


def _parse(data: bytearray, start: int) -> tuple[object, int] | _Incomplete:
    """The frame at ``start`` and where the next one begins, or ``_INCOMPLETE``."""
    end = data.find(b"\r\n", start)
    if end < 0:
        return _INCOMPLETE
    kind, rest, position = data[start], bytes(data[start + 1 : end]), end + 2
    if kind == 0x2B:  # +
        return rest, position
    if kind == 0x2D:  # -
        return ReplyError(rest.decode(errors="replace")), position
    if kind == 0x3A:  # :
        return int(rest), position
    if kind == 0x24:  # $
        length = int(rest)
        if length < 0:
            return None, position
        if len(data) < position + length + 2:
            return _INCOMPLETE
        return bytes(data[position : position + length]), position + length + 2
    if kind == 0x2A:  # *
        items: list[object] = []
        for _ in range(int(rest)):
            parsed = _parse(data, position)
            if isinstance(parsed, _Incomplete):
                return _INCOMPLETE
            item, position = parsed
            items.append(item)
        return items, position
    raise ConnectionError(f"unexpected reply from Redis: {bytes(data[start:end])[:40]!r}")


class Subscription(asyncio.Protocol):
    """Replies before the subscription is confirmed go to :meth:`reply`; every frame after it
    goes to ``on_frame``."""

    def __init__(self, on_frame: Callable[[object], None]) -> None:
        self._on_frame = on_frame
        self._buffer = bytearray()
        self._replies: deque[object] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.subscribed = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without deriving from it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        position = 0
        try:
            while position < len(buffer):
                parsed = _parse(buffer, position)
                if isinstance(parsed, _Incomplete):
                    break
                frame, position = parsed
                if self.subscribed:
                    self._on_frame(frame)
                    continue
                if isinstance(frame, list) and frame[:1] == [b"subscribe"]:
                    self.subscribed = True
                self._replies.append(frame)
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(None)
        except (ConnectionError, ValueError) as error:
            self._fail(error)
            return
        del buffer[:position]

    def _fail(self, error: Exception) -> None:
        if not self.closed.done():
            self.closed.set_exception(ConnectionError(str(error)))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_exception(ConnectionError(str(exc or "connection to Redis closed")))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def reply(self) -> object:
        while not self._replies:
            if self.closed.done():
                self.closed.result()  # raises the reason
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        reply = self._replies.popleft()
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def subscribe(
    config: RedisConfig, channel: str, on_frame: Callable[[object], None]
) -> Subscription:
    """Connect, authenticate and subscribe to ``channel``; raise when any step fails."""
    context: ssl.SSLContext | None = None
    if config.tls:
        context = ssl.create_default_context(
            cafile=config.tls_client_cas[0] if config.tls_client_cas else None
        )
        if config.tls_certificate:
            context.load_cert_chain(config.tls_certificate, config.tls_key)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(config.dial_timeout.total_seconds()):
        _, subscription = await loop.create_connection(
            lambda: Subscription(on_frame), config.host, config.port, ssl=context
        )
    try:
        async with asyncio.timeout(config.read_timeout.total_seconds()):
            if config.password:
                credentials = [config.username.encode()] if config.username else []
                subscription.write(command(b"AUTH", *credentials, config.password.encode()))
                await subscription.reply()
            subscription.write(command(b"SUBSCRIBE", channel.encode()))
            confirmation = await subscription.reply()
        if not (isinstance(confirmation, list) and confirmation[:1] == [b"subscribe"]):
            raise ConnectionError(f"unexpected answer to SUBSCRIBE: {confirmation!r}")
    except BaseException:
        subscription.close()
        with contextlib.suppress(ConnectionError):
            await subscription.closed
        raise
    return subscription
