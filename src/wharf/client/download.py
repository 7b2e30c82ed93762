"""Large bodies read by threads with the standard library's HTTP client.

Receiving a blob through httpx on the event loop costs several times the kernel's own copy:
per 256 MiB from a registry on the same machine, 0.15-0.4 CPU-s against 0.05 for a blocking
``read`` of 1 MiB pieces in a thread (``bench/FINDINGS.md`` §9), and a mirror's cold pull is
bounded by the CPU it spends. So a download is sent and read in a thread: one hand-off per
piece, the next piece read while the caller handles this one.

What httpx gives the rest of the session is kept: redirects are followed the same way (the
Authorization header dropped once they leave the first host), TLS is checked with the same
context, kept-alive connections are reused per origin, and a socket timeout bounds every
wait. A caller who stops reading part way closes the connection (``shutdown`` wakes a thread
blocked on it), so nothing waits on a body nobody wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import socket
import ssl
import threading
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import httpx

__all__ = [
    "PIECE",
    "REDIRECTS",
    "REDIRECT_STATUSES",
    "Answer",
    "Download",
    "DownloadFailed",
    "Downloads",
    "StreamedDownload",
    "content_encoded",
]

#: Bytes a thread reads for one hand-off.
PIECE = 1 << 20
#: Redirects a request follows at most, and the statuses that are redirects to follow.
REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
#: A redirect's body is read (so its connection is kept) only when it is this small.
_SMALL_BODY = 64 << 10
_IDLE_PER_ORIGIN = 16

_Origin = tuple[str, str, int]


class DownloadFailed(httpx.TransportError):
    """The server could not be reached, or stopped sending part way (an httpx transport
    error, as the session's other requests raise)."""


class Answer(Protocol):
    """A download's answer, however its body is read."""

    status_code: int
    headers: httpx.Headers
    #: Where the answer came from, after redirects.
    url: str

    def pieces(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class StreamedDownload:
    """An answer read through httpx, for what the threads do not speak: an HTTP proxy, a
    body encoded although it was asked for as it is (httpx decodes it)."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.url = str(response.url)

    async def pieces(self) -> AsyncIterator[bytes]:
        encoded = content_encoded(self.headers)
        try:
            async for piece in (
                self._response.aiter_bytes() if encoded else self._response.aiter_raw()
            ):
                yield piece
        except httpx.HTTPError as error:
            raise DownloadFailed(f"the body stopped short: {error!r}") from error

    async def aclose(self) -> None:
        await self._response.aclose()


def content_encoded(headers: httpx.Headers) -> bool:
    return str(headers.get("content-encoding", "identity")).lower() != "identity"


class _Connections:
    """Kept-alive connections by origin; each is used by one thread at a time."""

    def __init__(self, context: ssl.SSLContext, timeout: float) -> None:
        self._context = context
        self._timeout = timeout
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def take(self, origin: _Origin) -> tuple[http.client.HTTPConnection, bool]:
        """A connection to ``origin``, and whether it was used before (so may have been
        closed by the server since)."""
        with self._lock:
            idle = self._idle.get(origin)
            if idle:
                return idle.pop(), True
        scheme, host, port = origin
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=self._timeout, context=self._context
            ), False
        return http.client.HTTPConnection(host, port, timeout=self._timeout), False

    def give_back(self, origin: _Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < _IDLE_PER_ORIGIN:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


def _origin(url: urllib.parse.SplitResult) -> _Origin:
    if url.scheme not in ("http", "https") or not url.hostname:
        raise DownloadFailed(f"cannot download from {url.scheme or 'a relative'} URL")
    return url.scheme, url.hostname, url.port or (443 if url.scheme == "https" else 80)


def _target(url: urllib.parse.SplitResult) -> str:
    return (url.path or "/") + (f"?{url.query}" if url.query else "")


class Download:
    """One answer: its status and headers at once, its body a piece at a time."""

    def __init__(
        self,
        downloads: Downloads,
        origin: _Origin,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        url: str,
    ) -> None:
        self._downloads = downloads
        self.url = url
        self._origin = origin
        self._connection: http.client.HTTPConnection | None = connection
        self._response = response
        self._reading: Future[bytes] | None = None
        self._complete = False
        self.status_code = response.status
        self.headers = httpx.Headers(response.getheaders())
        downloads.open.add(self)

    def _read_ahead(self) -> Future[bytes]:
        try:
            self._reading = self._downloads.executor.submit(_read_piece, self._response)
        except RuntimeError as error:  # the threads are shut down: the session closed
            raise DownloadFailed("the session is closed") from error
        return self._reading

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body as it arrives, up to ``PIECE`` bytes a piece (what came meanwhile, so a
        slow server's first bytes are passed on at once); DownloadFailed when it stops
        short."""
        reading = self._read_ahead()
        while True:
            try:
                piece = await asyncio.wrap_future(reading)
            except (OSError, http.client.HTTPException, ValueError) as error:
                raise DownloadFailed(f"the body stopped short: {error!r}") from error
            if not piece:
                self._complete = True
                return
            reading = self._read_ahead()
            yield piece

    async def aclose(self) -> None:
        self.abandon()

    def abandon(self) -> None:
        """Give the connection back when the body was read to its end, else close it: at
        once, or once a read in flight (woken by the ``shutdown``) returns."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._downloads.open.discard(self)
        if self._complete and not self._response.will_close:
            self._downloads.connections.give_back(self._origin, connection)
            return
        reading = self._reading
        if reading is None or reading.done():
            connection.close()
            return
        if connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        reading.add_done_callback(lambda _: connection.close())


def _read_piece(response: http.client.HTTPResponse) -> bytes:
    piece = response.read1(PIECE)
    if not piece:
        # read1 tells neither a body cut short nor, once it has read one to its end, closes it
        # (the connection is not free for the next request until it does).
        if response.length:
            raise http.client.IncompleteRead(b"", response.length)
        response.close()
    return piece


class Downloads:
    """The threads, the context and the kept connections of one session's downloads."""

    def __init__(
        self,
        verify: ssl.SSLContext | bool | str,
        *,
        timeout: float,
        threads: int,
        user_agent: str,
    ) -> None:
        if isinstance(verify, str):  # a CA bundle's file or directory
            bundle = verify
            verify = (
                ssl.create_default_context(capath=bundle)
                if os.path.isdir(bundle)
                else ssl.create_default_context(cafile=bundle)
            )
        self.connections = _Connections(httpx.create_ssl_context(verify), timeout)
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="wharf-download")
        #: Answers not closed yet: closed with the session, so that no thread stays blocked
        #: on a stalled server until its timeout (the process waits for its threads).
        self.open: set[Download] = set()
        self._user_agent = user_agent

    async def get(self, url: str, headers: Mapping[str, str]) -> Download:
        """GET ``url``, following redirects: the answer's status and headers, its body
        unread."""
        opening = self.executor.submit(self._get, url, dict(headers))
        try:
            return await asyncio.wrap_future(opening)
        except asyncio.CancelledError:  # the answer may still come: nobody will read it
            opening.add_done_callback(_abandon)
            raise

    def _get(self, url: str, headers: dict[str, str]) -> Download:
        headers = {"User-Agent": self._user_agent, **headers}
        for _ in range(REDIRECTS + 1):
            split = urllib.parse.urlsplit(url)
            origin = _origin(split)
            connection, response = self._request(origin, _target(split), headers)
            location = response.getheader("location")
            if response.status not in REDIRECT_STATUSES or not location:
                return Download(self, origin, connection, response, url)
            self._done_with(origin, connection, response)
            target = urllib.parse.urlsplit(urllib.parse.urljoin(url, location))
            if (target.scheme, target.netloc) != (split.scheme, split.netloc):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target.geturl()
        raise DownloadFailed("too many redirects")

    def _request(
        self, origin: _Origin, target: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        # A kept connection the server closed meanwhile fails at once: tried again, fresh.
        while True:
            connection, reused = self.connections.take(origin)
            try:
                connection.request("GET", target, headers=headers)
                return connection, connection.getresponse()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                if not reused or isinstance(error, TimeoutError):
                    raise DownloadFailed(f"{origin[1]} cannot be reached: {error!r}") from error

    def _done_with(
        self,
        origin: _Origin,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        """Finish an answer whose body is not wanted: read when small, else closed."""
        if response.length is not None and response.length <= _SMALL_BODY:
            with contextlib.suppress(OSError, http.client.HTTPException):
                response.read()
                if not response.will_close:
                    self.connections.give_back(origin, connection)
                    return
        connection.close()

    def close(self) -> None:
        for answer in list(self.open):
            answer.abandon()
        self.connections.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _abandon(opening: Future[Download]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().abandon()
