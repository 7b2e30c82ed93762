"""uvicorn's httptools protocol with limits on the request head and on connections.

httptools accepts a request line and header block of any size and any number of fields, so a
client could make a worker buffer megabytes before the app is called. Bytes of the head are
counted as they arrive (each received piece that leaves the head unfinished), fields as they
are parsed; past either limit the connection gets a 431 and is closed.

uvicorn closes a kept-alive connection that stays idle, but nothing else: a connection that
never finishes a request head, or never sends one, stays open for as long as its client
wants, and a few thousand of them exhaust the worker's open files. So a head must arrive
within ``ConnectionLimits.header_timeout``: counted from the connection's opening for its
first request, and from the first byte of each later one (until then the connection is idle,
and uvicorn's keep-alive timeout applies). Past it the connection is closed, after a 408 when
part of a head had come.

A worker keeps at most ``ConnectionLimits.max_connections`` connections. A new one past that
closes the connection that has waited longest for a request (idle, or still sending its head)
as nginx does when it runs out of connections, so that a flood of idle connections cannot
keep new clients out; when every connection is serving a request, the new one is answered 503
and closed. A request in progress is never cut.

It also keeps a request body's pieces as parsed until the app receives them (``_Pieces``),
rather than copying them twice on their way.

A response may hand the worker a stored file instead of its bytes (the ASGI zero-copy send
extension, ``http.response.zerocopysend``, advertised in each request's scope): the bytes go
from the file to the socket in threads (``wharf.file_sending``), not through the event loop.

A connection that opens with a TLS handshake is closed without a word: podman and skopeo
told not to verify TLS try HTTPS first and fall back to HTTP, and each try would otherwise log
an "Invalid HTTP request" warning on a registry served over plain HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from wharf.file_sending import ZERO_COPY, ClientGone, SendStalled, client_kind, send_file

__all__ = ["MAX_HEADER_FIELDS", "MAX_HEAD_BYTES", "ConnectionLimits", "LimitedHttpToolsProtocol"]

#: The first bytes of a TLS record carrying a handshake (a ClientHello).
_TLS_HANDSHAKE = b"\x16\x03"

#: About hyper's HTTP/1 buffer limit and field count, which granian keeps.
MAX_HEAD_BYTES = 400 * 1024
MAX_HEADER_FIELDS = 100

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\n"
    b"connection: close\r\n"
    b"\r\n"
)
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-length: 0\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"\r\n"
)
#: Seconds a refused connection is kept half-closed for its client to read the 503.
_LINGER = 1.0
#: Seconds between two log lines about the connection cap, which a flood would otherwise repeat
#: for every connection.
_LOG_INTERVAL = 60.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float  # seconds
    max_connections: int  # per worker


class _Waiting:
    """One server's connections that may be waiting for a request, longest waiting first.

    Entries are dropped lazily: one found serving a request when a slot is needed is removed
    then, and put back at the end when its response is complete.
    """

    __slots__ = ("__weakref__", "connections", "logged")

    def __init__(self) -> None:
        self.connections: dict[LimitedHttpToolsProtocol, None] = {}
        self.logged = -_LOG_INTERVAL

    def add(self, connection: LimitedHttpToolsProtocol) -> None:
        self.connections.pop(connection, None)
        self.connections[connection] = None

    def discard(self, connection: LimitedHttpToolsProtocol) -> None:
        self.connections.pop(connection, None)

    def close_longest_waiting(self) -> bool:
        connections = self.connections
        while connections:
            connection = next(iter(connections))
            del connections[connection]
            if connection.waiting_for_request():
                connection.drop()
                return True
        return False

    def should_log(self) -> bool:
        now = time.monotonic()
        if now - self.logged < _LOG_INTERVAL:
            return False
        self.logged = now
        return True


#: Per server: a worker process runs one, whose connections share its open files.
_waiting: weakref.WeakKeyDictionary[ServerState, _Waiting] = weakref.WeakKeyDictionary()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Built by uvicorn for each connection; ``limits`` is bound with ``functools.partial``."""

    _in_head = True  # until the first request's headers are complete
    _head_bytes = 0
    _head_fields = 0
    _refused = False
    _timer: TimerHandle | None = None  # the header timeout; for a refused connection, its end

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        waiting = _waiting.get(server_state)
        if waiting is None:
            waiting = _waiting[server_state] = _Waiting()
        self._waiting = waiting

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn's set of this server's connections: the cap counts what it counts.
        if len(self.connections) >= self.limits.max_connections:
            if self._waiting.close_longest_waiting():
                if self._waiting.should_log():
                    log.info(
                        "%d connections open in this worker (http.maxconnections): closing "
                        "the longest idle ones to accept new ones",
                        self.limits.max_connections,
                    )
            else:
                self._refuse(transport)
                return
        super().connection_made(transport)
        self._waiting.add(self)
        self._timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _refuse(self, transport: asyncio.Transport) -> None:
        if self._waiting.should_log():
            log.warning(
                "%d connections open in this worker (http.maxconnections), all serving "
                "requests: refusing new connections with 503",
                self.limits.max_connections,
            )
        self._refused = True
        self.transport = transport
        transport.write(_BUSY)
        if not transport.can_write_eof():
            transport.close()
            return
        # Closed at once, the connection would be reset by the request the client is sending,
        # and the reset could destroy the 503 before the client reads it: the 503 is followed
        # by the end of the stream instead, and the request read and ignored until the client
        # closes (or for a second at most).
        transport.write_eof()
        self._timer = self.loop.call_later(_LINGER, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._waiting.discard(self)
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head and not self._head_bytes and data[:2] == _TLS_HANDSHAKE:
            self._refused = True
            self.transport.close()
            return
        super().data_received(data)
        if not self._in_head:
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES or self._head_fields > MAX_HEADER_FIELDS:
            self._refused = True
            self.transport.write(_TOO_LARGE)
            self.transport.close()
        elif self._timer is None:
            # The first piece of a kept-alive connection's next head: its clock starts now.
            # (Most heads arrive whole, and never get here.)
            self._timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes, self._head_fields = True, 0, 0
        super().on_message_begin()
        if self.scheme == "http":  # over TLS the bytes must go through the transport
            self.scope["extensions"] = {**self.scope.get("extensions", {}), ZERO_COPY: {}}

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        plain = cycle.send

        async def send(message: Any) -> None:
            if message["type"] == ZERO_COPY:
                await self._send_file(cycle, message, plain)
            else:
                await plain(message)

        cycle.send = send  # type: ignore[method-assign]  # what run_asgi hands the app
        super()._start_asgi_task(cycle, app)

    async def _send_file(self, cycle: RequestResponseCycle, message: Any, plain: Any) -> None:
        """The body, or its next part, from a file: the message's ``file`` (a descriptor or an
        object with ``fileno``), ``offset`` and ``count``, as the extension defines them."""
        if cycle.disconnected:
            return
        if not cycle.response_started or cycle.response_complete or cycle.chunked_encoding:
            raise RuntimeError("a file is sent only as the body of a response with a length")
        file = message["file"]
        fd = file if isinstance(file, int) else file.fileno()
        offset = message.get("offset") or 0
        count = message.get("count")
        if count is None:
            count = os.fstat(fd).st_size - offset
        if count > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        more_body = message.get("more_body", False)
        if cycle.scope["method"] == "HEAD":  # no body goes out; uvicorn ends the response
            await plain({"type": "http.response.body", "body": b"", "more_body": more_body})
            return
        transport = self.transport
        if transport.get_write_buffer_size():
            # The head waits in the transport (its socket was full): pause at any buffered
            # byte, so that the flow control says when it is all out.
            low, high = transport.get_write_buffer_limits()
            transport.set_write_buffer_limits(high=0, low=0)
            try:
                await cycle.flow.drain()
            finally:
                transport.set_write_buffer_limits(high=high, low=low)
        sock = transport.get_extra_info("socket")
        if cycle.disconnected or sock is None:
            return
        try:
            client = client_kind(_header(cycle.scope, b"user-agent"))
            await send_file(sock.fileno(), fd, offset, count, client)
        except (ClientGone, SendStalled, OSError) as error:
            # The body is cut: only the end of the connection can tell the client so.
            if not isinstance(error, ClientGone):
                log.warning("sending a file to %s failed: %s", self.client, error)
            cycle.disconnected = True
            transport.abort()
            return
        cycle.expected_content_length -= count
        await plain({"type": "http.response.body", "body": b"", "more_body": more_body})

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle now, until the next request
            self._waiting.add(self)

    def waiting_for_request(self) -> bool:
        """Idle, or receiving a head: no request of this connection is being served."""
        cycle = self.cycle
        return cycle is None or (cycle.response_complete and not self.pipeline)

    def drop(self) -> None:
        self._cancel_timer()
        # Counted out now, not when the loop reports the connection lost, so that the next
        # connection accepted in the same burst sees the slot free.
        self.connections.discard(self)
        self.transport.close()

    def _head_timed_out(self) -> None:
        self._timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes:
            self._refused = True
            self.transport.write(_TIMED_OUT)
        self.transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if type(cycle.body) is bytearray and not cycle.body:
            cycle.body = _Pieces()  # type: ignore[assignment]
        super().on_body(body)


class _Pieces:
    """A request body received since the app's last ``receive``, as the pieces parsed.

    uvicorn (0.42 on) appends each piece to a ``bytearray``, which reallocates and copies
    what it holds as it grows, and ``receive`` copies that once more into ``bytes``. Held as
    a list, each byte is copied once when several pieces arrived together and not at all
    when one did (a 32 KiB chunk of a streamed layer, as often as not). The appends were 7%
    of a worker's CPU samples while layers streamed in; memory copies went from 16-18% of
    them to 13.5%.
    """

    __slots__ = ("pieces", "size")

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0

    def __iadd__(self, piece: bytes) -> _Pieces:
        self.pieces.append(piece)
        self.size += len(piece)
        return self

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        pieces = self.pieces
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _header(scope: Any, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None
