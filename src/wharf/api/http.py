"""Minimal request and response types over raw ASGI, so hot routes pay for nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from wharf.errors import RegistryError, SizeInvalid
from wharf.file_sending import MIN_THREADED_SEND, ZERO_COPY
from wharf.storage.driver.base import FileReader

__all__ = [
    "ZERO_COPY",
    "ASGIApp",
    "ClientDisconnected",
    "Receive",
    "Request",
    "Response",
    "Scope",
    "Send",
    "check_header_limits",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Bytes per read when streaming a stored file: large reads measured fastest on loopback.
STREAM_CHUNK = 1 << 20

#: Largest header value wharf reads (bytes); longer values are refused.
MAX_HEADER_VALUE = 8192
#: Limits on a request's headers, whichever server runs the app (uvicorn has none).
MAX_HEADER_FIELDS = 100
MAX_HEADER_BYTES = 64 << 10
#: Query parameters parsed at most.
MAX_QUERY_FIELDS = 64


def check_header_limits(raw_headers: list[tuple[bytes, bytes]]) -> None:
    """Refuse, with 431, a request whose headers exceed what wharf reads."""
    if len(raw_headers) > MAX_HEADER_FIELDS:
        raise SizeInvalid(
            {"limit": MAX_HEADER_FIELDS}, message="too many request headers", status=431
        )
    if sum(len(name) + len(value) for name, value in raw_headers) > MAX_HEADER_BYTES:
        raise SizeInvalid(
            {"limit": MAX_HEADER_BYTES}, message="request headers too large", status=431
        )


#: Seconds a request body may stall between two chunks (``http.body_timeout``'s default).
BODY_TIMEOUT = 60.0


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


def _stalled(timeout: float | None) -> SizeInvalid:
    return SizeInvalid(
        {"timeout": timeout},
        message="request body stalled",
        status=408,
        headers={"Connection": "close"},
    )


class _Watchdog:
    """Cancels the task reading a body once one ``receive`` has waited ``timeout`` seconds.

    It wakes at most once per ``timeout`` and re-arms itself, so a body of many small
    chunks costs a clock read per chunk instead of a timer per chunk."""

    __slots__ = ("_handle", "fired", "loop", "task", "timeout", "waiting_since")

    def __init__(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[object] | None = None
        self.timeout = timeout
        self.waiting_since: float | None = None
        self.fired = False
        self._handle = self.loop.call_at(self.loop.time() + timeout, self._check)

    def _check(self) -> None:
        now = self.loop.time()
        since = self.waiting_since
        if since is not None and now - since >= self.timeout and self.task is not None:
            self.fired = True
            self.task.cancel()
            return
        self._handle = self.loop.call_at((since or now) + self.timeout, self._check)

    def stop(self) -> None:
        self._handle.cancel()


class Request:
    __slots__ = (
        "_body_started",
        "_headers",
        "_query",
        "body_timeout",
        "path",
        "receive",
        "scope",
    )

    def __init__(
        self, scope: Scope, receive: Receive, path: str, body_timeout: float | None = BODY_TIMEOUT
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.path = path
        self.body_timeout = body_timeout
        self._headers: dict[str, str] | None = None
        self._query: dict[str, list[str]] | None = None
        self._body_started = False

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def headers(self) -> Mapping[str, str]:
        if self._headers is None:
            headers: dict[str, str] = {}
            for raw_name, raw_value in self.scope["headers"]:
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._headers = headers
        return self._headers

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        if value is not None and len(value) > MAX_HEADER_VALUE:
            raise SizeInvalid({"header": name}, message="header too large", status=431)
        return value

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            try:
                self._query = (
                    parse_qs(raw, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
                    if raw
                    else {}
                )
            except ValueError:
                raise SizeInvalid(
                    {"limit": MAX_QUERY_FIELDS}, message="too many query parameters", status=414
                ) from None
        return self._query

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError:
            raise SizeInvalid(
                {"content-length": value[:40]}, message="invalid Content-Length"
            ) from None
        if length < 0:
            raise SizeInvalid({"content-length": value[:40]}, message="invalid Content-Length")
        return length

    async def stream(self) -> AsyncIterator[bytes]:
        """The request body as it arrives."""
        self._body_started = True
        timeout = self.body_timeout
        # A client that stops sending mid-body would otherwise hold this request (and its
        # upload lock) for as long as it keeps the connection open. One watchdog per body
        # rather than a timeout per receive: clients that stream in 32 KiB pieces (skopeo,
        # podman, docker) make thousands of receives per layer, and only the time spent
        # waiting in ``receive`` counts, not the time the consumer takes.
        watchdog = _Watchdog(timeout) if timeout is not None else None
        try:
            while True:
                if watchdog is None:
                    message = await self.receive()
                else:
                    # The task iterating the body may change between chunks.
                    watchdog.task = asyncio.current_task()
                    watchdog.waiting_since = watchdog.loop.time()
                    try:
                        message = await self.receive()
                    except asyncio.CancelledError:
                        if watchdog.fired and watchdog.task is not None:
                            watchdog.task.uncancel()
                            raise _stalled(timeout) from None
                        raise
                    watchdog.waiting_since = None
                kind = message["type"]
                if kind == "http.request":
                    chunk = message.get("body", b"")
                    if chunk:
                        yield chunk
                    if not message.get("more_body", False):
                        return
                elif kind == "http.disconnect":
                    raise ClientDisconnected()
        finally:
            if watchdog is not None:
                watchdog.stop()

    async def body(self, limit: int) -> bytes:
        """The whole body, refused with 413 when over ``limit`` bytes."""
        declared = self.content_length
        if declared is not None and declared > limit:
            raise SizeInvalid({"limit": limit}, message="request body too large", status=413)
        parts: list[bytes] = []
        size = 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > limit:
                raise SizeInvalid({"limit": limit}, message="request body too large", status=413)
            parts.append(chunk)
        return b"".join(parts)

    async def drain(self, limit: int = 1 << 20) -> None:
        """Read and drop an unread body, so the connection can be reused."""
        if self._body_started:
            return
        size = 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > limit:
                raise SizeInvalid({"limit": limit}, message="unexpected request body", status=413)


class Response:
    """An answer: a body in memory, a ``stream`` of chunks, or a stored ``file`` (a reader
    already at the first byte to send, ``content_length`` bytes of it), which a server that
    offers zero-copy sends gets as the file itself."""

    __slots__ = ("body", "file", "headers", "status", "stream")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        stream: AsyncIterator[bytes] | None = None,
        file: FileReader | None = None,
        content_length: int | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.stream = stream
        self.file = file
        self.headers: dict[str, str] = dict(headers or {})
        if file is not None:
            if content_length is None:
                raise ValueError("a file body needs its content_length")
            self.stream = file.chunks(STREAM_CHUNK, content_length)
        if self.stream is None:
            self.headers.setdefault("Content-Length", str(len(body)))
        elif content_length is not None:
            self.headers["Content-Length"] = str(content_length)

    async def send(
        self,
        send: Send,
        *,
        head: bool,
        extra: list[tuple[bytes, bytes]],
        zero_copy: bool = False,
    ) -> None:
        """``zero_copy``: the server takes ZERO_COPY messages (the ASGI extension)."""
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        raw.extend(extra)
        try:
            await send({"type": "http.response.start", "status": self.status, "headers": raw})
            if head or self.stream is None:
                await send({"type": "http.response.body", "body": b"" if head else self.body})
                return
            local = self.file.local_file() if zero_copy and self.file is not None else None
            count = int(self.headers["Content-Length"]) if local is not None else 0
            # Small files stream: their reader reads what the page cache holds on the loop,
            # where a thread hop would cost more than it saves.
            if local is not None and count >= MIN_THREADED_SEND:
                fd, offset = local
                await send({"type": ZERO_COPY, "file": fd, "offset": offset, "count": count})
                return
            async for chunk in self.stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            if self.stream is not None:
                await _close(self.stream)
            if self.file is not None:
                await self.file.close()


async def _close(stream: AsyncIterator[bytes]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def error_response(error: RegistryError) -> Response:
    import json

    body = json.dumps({"errors": [error.as_dict()]}, default=str).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", **error.headers}
    return Response(error.http_status, body, headers)


__all__ += ["error_response"]
