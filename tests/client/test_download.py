"""Downloads read by threads (``wharf.client.download``) from real HTTP servers on loopback:
pieces, kept connections, redirects, bodies cut short or abandoned, TLS, and the session's
choice of httpx when the environment names an HTTP proxy."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.certificates import write_certificate
from wharf.client.download import PIECE, DownloadFailed, Downloads, StreamedDownload
from wharf.client.session import Session

BODY = os.urandom(3 * PIECE + 12345)


class BodyServer:
    """HTTP/1.1 with keep-alive: ``/body`` (the whole of BODY), ``/to/<url>`` (a 307 there),
    ``/cut`` (half of BODY, then the connection closed), ``/stall`` (a piece, then nothing
    until ``release`` is set). Records each request's path, Authorization header and client
    port (one port a connection)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, str | None, int]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization")
                server.requests.append((self.path, auth, self.client_address[1]))
                if self.path.startswith("/to/"):
                    self.send_response(307)
                    self.send_header("Location", self.path.removeprefix("/to/"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                if self.path == "/body":
                    self.wfile.write(BODY)
                elif self.path == "/cut":
                    self.wfile.write(BODY[: len(BODY) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif self.path == "/stall":
                    self.wfile.write(BODY[:PIECE])
                    self.wfile.flush()
                    server.release.wait(30)
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server() -> Iterator[BodyServer]:
    served = BodyServer()
    yield served
    served.close()


@pytest.fixture
async def downloads() -> AsyncIterator[Downloads]:
    made = Downloads(True, timeout=10.0, threads=4, user_agent="test")
    yield made
    made.close()


async def _body(downloads: Downloads, url: str, **headers: str) -> tuple[int, bytes]:
    answer = await downloads.get(url, headers)
    try:
        return answer.status_code, b"".join([piece async for piece in answer.pieces()])
    finally:
        await answer.aclose()


async def test_a_body_comes_in_pieces_over_one_kept_connection(
    server: BodyServer, downloads: Downloads
) -> None:
    answer = await downloads.get(server.url("/body"), {})
    assert answer.status_code == 200
    assert answer.headers["content-length"] == str(len(BODY))
    pieces = [piece async for piece in answer.pieces()]
    await answer.aclose()
    assert b"".join(pieces) == BODY
    assert max(len(piece) for piece in pieces) <= PIECE
    assert await _body(downloads, server.url("/body")) == (200, BODY)
    ports = {port for _, _, port in server.requests}
    assert len(server.requests) == 2
    assert len(ports) == 1


async def test_redirects_keep_authorization_only_on_their_own_host(
    server: BodyServer, downloads: Downloads
) -> None:
    other = BodyServer()
    try:
        same = server.url("/to/" + server.url("/body"))
        assert await _body(downloads, same, Authorization="Bearer t") == (200, BODY)
        elsewhere = server.url("/to/" + other.url("/body", host="localhost"))
        assert await _body(downloads, elsewhere, Authorization="Bearer t") == (200, BODY)
    finally:
        other.close()
    assert [(path, auth) for path, auth, _ in server.requests] == [
        ("/to/" + server.url("/body"), "Bearer t"),
        ("/body", "Bearer t"),
        ("/to/" + other.url("/body", host="localhost"), "Bearer t"),
    ]
    assert [(path, auth) for path, auth, _ in other.requests] == [("/body", None)]


async def test_a_body_cut_short_fails(server: BodyServer, downloads: Downloads) -> None:
    answer = await downloads.get(server.url("/cut"), {})
    received: list[bytes] = []

    async def read() -> None:
        async for piece in answer.pieces():
            received.append(piece)

    with pytest.raises(DownloadFailed):
        await read()
    await answer.aclose()
    assert BODY.startswith(b"".join(received))
    assert sum(map(len, received)) < len(BODY)
    assert await _body(downloads, server.url("/body")) == (200, BODY)  # a fresh connection


async def test_a_body_given_up_part_way_frees_its_thread_at_once(server: BodyServer) -> None:
    downloads = Downloads(True, timeout=30.0, threads=1, user_agent="test")
    try:
        answer = await downloads.get(server.url("/stall"), {})
        pieces = answer.pieces()
        received = 0
        while received < PIECE:  # all the server sends before it stalls
            received += len(await anext(pieces))
        await asyncio.sleep(0.1)  # the read ahead now holds the one thread, waiting
        started = time.monotonic()
        await pieces.aclose()
        await answer.aclose()
        # The blocked read is woken by the shutdown, not by the 30 s timeout.
        assert await _body(downloads, server.url("/body")) == (200, BODY)
        assert time.monotonic() - started < 5
    finally:
        downloads.close()


async def test_closing_the_downloads_wakes_a_read_blocked_on_a_stalled_server(
    server: BodyServer,
) -> None:
    downloads = Downloads(True, timeout=30.0, threads=2, user_agent="test")
    answer = await downloads.get(server.url("/stall"), {})
    pieces = answer.pieces()
    received = 0
    while received < PIECE:  # all the server sends before it stalls
        received += len(await anext(pieces))
    await asyncio.sleep(0.1)  # the read ahead now waits on the server
    started = time.monotonic()
    downloads.close()
    with pytest.raises(DownloadFailed):
        await anext(pieces)
    assert time.monotonic() - started < 5  # not the 30 s timeout


async def test_a_kept_connection_the_server_closed_is_replaced(
    server: BodyServer, downloads: Downloads
) -> None:
    assert await _body(downloads, server.url("/body")) == (200, BODY)
    (kept,) = downloads.connections._idle.values()
    assert kept[0].sock is not None
    kept[0].sock.shutdown(socket.SHUT_RDWR)  # as a server's idle timeout would
    assert await _body(downloads, server.url("/body")) == (200, BODY)
    assert len({port for _, _, port in server.requests}) == 2


async def test_an_unreachable_server_fails(downloads: Downloads) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(DownloadFailed):
        await downloads.get(f"http://127.0.0.1:{port}/body", {})


async def test_tls_is_verified_as_configured(tmp_path: Path) -> None:
    certificate, key = write_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server = BodyServer(tls=context)
    try:
        url = server.url("/body", host="localhost")
        trusting = Downloads(str(certificate), timeout=10.0, threads=2, user_agent="test")
        default = Downloads(True, timeout=10.0, threads=2, user_agent="test")
        unverified = Downloads(False, timeout=10.0, threads=2, user_agent="test")
        try:
            assert await _body(trusting, url) == (200, BODY)
            assert await _body(unverified, url) == (200, BODY)
            with pytest.raises(DownloadFailed):
                await default.get(url, {})
        finally:
            for made in (trusting, default, unverified):
                made.close()
    finally:
        server.close()


class ForwardProxy:
    """An HTTP proxy for plain-HTTP absolute URLs; records what it forwarded."""

    def __init__(self) -> None:
        self.forwarded: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy.forwarded.append(self.path)
                target = httpx.URL(self.path)
                upstream = http.client.HTTPConnection(target.host, target.port)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                upstream.request("GET", target.raw_path.decode(), headers=headers)
                answer = upstream.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                upstream.close()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


async def test_a_session_downloads_through_the_proxy_the_environment_names(
    server: BodyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = ForwardProxy()
    try:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        session = Session(server.url(""))
        try:
            answer = await session.download("/body", "repository:any:pull")
            assert isinstance(answer, StreamedDownload)
            digest = hashlib.sha256()
            async for piece in answer.pieces():
                digest.update(piece)
            await answer.aclose()
        finally:
            await session.aclose()
    finally:
        proxy.close()
    assert digest.digest() == hashlib.sha256(BODY).digest()
    assert proxy.forwarded == [server.url("/body")]


async def test_a_session_downloads_in_threads_without_a_proxy(
    server: BodyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "example.com")  # exceptions, with no proxy to except from
    session = Session(server.url(""))
    try:
        answer = await session.download("/body", "repository:any:pull")
        assert not isinstance(answer, StreamedDownload)
        assert b"".join([piece async for piece in answer.pieces()]) == BODY
        await answer.aclose()
    finally:
        await session.aclose()
