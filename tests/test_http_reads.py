"""Upstream clients read response bodies in large pieces, not httpcore's 64 KiB."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest

from wharf.client.session import Session
from wharf.http_reads import READ_SIZE

_BODY = bytes(range(256)) * (32 << 12)  # 8 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(_BODY)))
        self.end_headers()
        self.wfile.write(_BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_a_session_reads_a_body_in_pieces_larger_than_64_kib(server: str) -> None:
    session = Session(server)
    try:
        response = await session.send("GET", "/blob", "", stream=True)
        # The sender fills the socket buffers meanwhile: each read finds more than it asks.
        await asyncio.sleep(0.2)
        pieces = [len(piece) async for piece in response.aiter_raw()]
        await response.aclose()
    finally:
        await session.aclose()
    assert sum(pieces) == len(_BODY)
    assert max(pieces) > 64 << 10
    assert max(pieces) <= READ_SIZE
