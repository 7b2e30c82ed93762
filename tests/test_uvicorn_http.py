"""uvicorn's protocol as wharf runs it: request bodies arrive whole however they are cut.

The body a request's ``receive`` hands over is whatever was parsed since the last one: a
single piece as it is, several joined. A raw socket controls how the pieces arrive.
"""

from __future__ import annotations

import hashlib
import socket
import time

import httpx
import pytest

from tests.support.server import WharfServer

pytestmark = pytest.mark.server


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _answer(connection: socket.socket) -> tuple[int, dict[str, str]]:
    received = b""
    while b"\r\n\r\n" not in received:
        more = connection.recv(65536)
        assert more, "connection closed before the answer"
        received += more
    head = received.partition(b"\r\n\r\n")[0].decode()
    status_line, *lines = head.split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    assert headers.get("content-length", "0") == "0"
    return int(status_line.split()[1]), headers


def test_a_streamed_body_arrives_whole_whether_its_pieces_come_alone_or_together() -> None:
    pieces = [bytes([n]) * size for n, size in enumerate([5, 32_768, 1, 70_000, 300, 9])]
    many_small = [bytes([n % 256]) * 700 for n in range(200)]
    body = b"".join(pieces) + b"".join(many_small)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    with WharfServer(storage={"inmemory": {}}, config={"http": {"server": "uvicorn"}}) as running:
        started = httpx.post(running.url + "/v2/pieces/blobs/uploads/")
        assert started.status_code == 202
        address, _, port = running.host.rpartition(":")
        with socket.create_connection((address, int(port)), timeout=10) as connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.sendall(
                f"PATCH {started.headers['location']} HTTP/1.1\r\nHost: registry\r\n"
                "Content-Type: application/octet-stream\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode()
            )
            for piece in pieces:  # one at a time, each most likely received on its own
                connection.sendall(_chunk(piece))
                time.sleep(0.02)
            # Two hundred chunks in one write: parsed together, handed over joined.
            connection.sendall(b"".join(map(_chunk, many_small)) + b"0\r\n\r\n")
            status, headers = _answer(connection)
        assert status == 202
        assert headers["range"] == f"0-{len(body) - 1}"
        completed = httpx.put(running.url + headers["location"], params={"digest": digest})
        assert completed.status_code == 201
        pulled = httpx.get(running.url + f"/v2/pieces/blobs/{digest}")
        assert pulled.status_code == 200
        assert pulled.content == body
