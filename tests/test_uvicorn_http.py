"""uvicorn's protocol as wharf runs it: request bodies arrive whole however they are cut, heads
and idle connections are timed out, connections past the cap make room or are refused.

The body a request's ``receive`` hands over is whatever was parsed since the last one: a
single piece as it is, several joined. A raw socket controls how the pieces arrive, and what
a client leaves unsent. Where granian has the same setting, it is held to it too.
"""

from __future__ import annotations

import hashlib
import random
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.server import WharfServer
from tests.support.urls import with_query

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
        completed = httpx.put(with_query(running.url + headers["location"], digest=digest))
        assert completed.status_code == 201
        pulled = httpx.get(running.url + f"/v2/pieces/blobs/{digest}")
        assert pulled.status_code == 200
        assert pulled.content == body


# --- heads, idle connections and the connection cap -----------------------------------------

HEAD = b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n"
#: Timeouts short enough for a test, far enough apart to tell which one closed a connection.
TIMEOUTS = {"headertimeout": "1s", "idletimeout": "3s"}


def _connect(running: WharfServer) -> socket.socket:
    address, _, port = running.host.rpartition(":")
    connection = socket.create_connection((address, int(port)), timeout=10)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def _read_head(connection: socket.socket) -> bytes:
    """A response's head, read byte by byte so that nothing after it is consumed."""
    received = b""
    while not received.endswith(b"\r\n\r\n"):
        more = connection.recv(1)
        assert more, "connection closed before the answer"
        received += more
    return received


def _read_response(connection: socket.socket) -> bytes:
    """One response with a Content-Length, leaving the connection open."""
    head = _read_head(connection)
    body = b""
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head


def _until_closed(connection: socket.socket, limit: float = 10.0) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent meanwhile."""
    began = time.monotonic()
    connection.settimeout(limit)
    received = b""
    while more := connection.recv(65536):
        received += more
    return time.monotonic() - began, received


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_a_head_that_stops_halfway_is_dropped_after_the_header_timeout(server: str) -> None:
    config = {"http": {"server": server, **TIMEOUTS}}
    with WharfServer(storage={"inmemory": {}}, config=config) as running:
        with _connect(running) as connection:
            connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: regis")
            elapsed, received = _until_closed(connection)
        assert 0.8 < elapsed < 5
        if server == "uvicorn":
            assert received.startswith(b"HTTP/1.1 408 ")
        assert httpx.get(running.url + "/v2/").status_code == 200


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout() -> None:
    config = {"http": {"server": "uvicorn", **TIMEOUTS}}
    with WharfServer(storage={"inmemory": {}}, config=config) as running:
        with _connect(running) as connection:
            elapsed, received = _until_closed(connection)
        assert 0.8 < elapsed < 5
        assert received == b""


@pytest.mark.slow
def test_an_idle_connection_is_closed_after_the_idle_timeout() -> None:
    config = {"http": {"server": "uvicorn", **TIMEOUTS}}
    with WharfServer(storage={"inmemory": {}}, config=config) as running:
        with _connect(running) as connection:
            connection.sendall(HEAD)
            assert _read_response(connection).startswith(b"HTTP/1.1 200 ")
            elapsed, received = _until_closed(connection)
        assert 2.7 < elapsed < 6  # the idle timeout, not the header timeout
        assert received == b""


@pytest.mark.slow
def test_a_kept_alive_connection_gets_the_header_timeout_from_its_next_heads_first_byte() -> None:
    config = {"http": {"server": "uvicorn", **TIMEOUTS}}
    with WharfServer(storage={"inmemory": {}}, config=config) as running:
        with _connect(running) as connection:
            for _ in range(3):  # every request of the connection, not only its first
                connection.sendall(HEAD)
                assert _read_response(connection).startswith(b"HTTP/1.1 200 ")
                time.sleep(1.5)  # idle for longer than the header timeout
            connection.sendall(b"GET /v2/ HTTP/1.1\r\n")
            elapsed, received = _until_closed(connection)
        assert 0.8 < elapsed < 5
        assert received.startswith(b"HTTP/1.1 408 ")


def test_past_the_connection_cap_the_longest_waiting_connection_makes_room() -> None:
    config = {"http": {"server": "uvicorn", "maxconnections": 4, "headertimeout": "30s"}}
    with WharfServer(storage={"inmemory": {}}, config=config) as running:
        waiting = [_connect(running) for _ in range(4)]
        waiting[1].sendall(b"GET /v2/ HTTP/1.1\r\n")  # still sending its head
        waiting[2].sendall(HEAD)  # idle after its answer
        assert _read_response(waiting[2]).startswith(b"HTTP/1.1 200 ")
        # Room for each new client (which keeps its connection): the connections that waited
        # longest are closed, the one still sending its head included.
        with httpx.Client(timeout=5) as first, httpx.Client(timeout=5) as second:
            assert first.get(running.url + "/v2/").status_code == 200
            assert second.get(running.url + "/v2/").status_code == 200
            assert _until_closed(waiting[0], limit=2)[1] == b""
            assert _until_closed(waiting[1], limit=2)[1] == b""
            waiting[3].sendall(HEAD)  # the two others are still served
            assert _read_response(waiting[3]).startswith(b"HTTP/1.1 200 ")
            waiting[2].sendall(HEAD)
            assert _read_response(waiting[2]).startswith(b"HTTP/1.1 200 ")
        for connection in waiting:
            connection.close()


def test_past_the_connection_cap_with_every_connection_busy_a_new_one_gets_503() -> None:
    config = {"http": {"server": "uvicorn", "maxconnections": 3}}
    with WharfServer(storage={"inmemory": {}}, config=config) as running:
        busy = []
        for _ in range(3):  # uploads whose bodies have not come yet: requests in progress
            started = httpx.post(running.url + "/v2/busy/blobs/uploads/", timeout=5)
            assert started.status_code == 202
            connection = _connect(running)
            connection.sendall(
                f"PATCH {started.headers['location']} HTTP/1.1\r\nHost: registry\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 10\r\n"
                "Expect: 100-continue\r\n\r\n".encode()
            )
            # The app asks for the body: the request is being served.
            assert _read_head(connection).startswith(b"HTTP/1.1 100 ")
            busy.append(connection)
        with _connect(running) as refused:
            refused.sendall(HEAD)
            _, received = _until_closed(refused, limit=5)
        assert received.startswith(b"HTTP/1.1 503 ")
        for connection in busy:  # none of them was cut; each upload goes on
            connection.sendall(b"0123456789")
            assert _read_response(connection).startswith(b"HTTP/1.1 202 ")
            connection.close()
        assert httpx.get(running.url + "/v2/", timeout=5).status_code == 200


def test_a_tls_handshake_on_plain_http_is_closed_without_a_warning() -> None:
    """podman and skopeo told not to verify TLS try HTTPS before HTTP."""
    with WharfServer() as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as hello:
            hello.sendall(b"\x16\x03\x01\x00\x05hello")
            assert hello.recv(100) == b""  # closed, nothing answered
        assert httpx.get(server.url + "/v2/").status_code == 200
        assert "Invalid HTTP request" not in server.log()


# --- stored files sent from threads ------------------------------------------------------------


def _push(url: str, name: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = httpx.post(f"{url}/v2/{name}/blobs/uploads/")
    completed = httpx.put(
        with_query(url + started.headers["location"], digest=digest), content=data, timeout=30
    )
    assert completed.status_code == 201, completed.text
    return digest


def test_blobs_sent_from_threads_arrive_whole_in_ranges_and_side_by_side() -> None:
    large = random.Random(3).randbytes(5 << 20)
    small = random.Random(4).randbytes(100_000)
    config = {"http": {"server": "uvicorn"}, "log": {"level": "info"}}
    with WharfServer(workers=2, config=config) as running:
        large_digest = _push(running.url, "sent/large", large)
        small_digest = _push(running.url, "sent/small", small)
        with httpx.Client(base_url=running.url, timeout=30) as client:
            whole = client.get(f"/v2/sent/large/blobs/{large_digest}")
            assert whole.status_code == 200
            assert whole.content == large
            assert whole.headers["content-length"] == str(len(large))
            for first, last in [(0, 0), (1, 3 << 20), (700_001, len(large) - 1)]:
                part = client.get(
                    f"/v2/sent/large/blobs/{large_digest}",
                    headers={"Range": f"bytes={first}-"}
                    if last == len(large) - 1
                    else {"Range": f"bytes={first}-{last}"},
                )
                assert part.status_code == 206
                assert part.content == large[first : last + 1]
            assert client.get(f"/v2/sent/small/blobs/{small_digest}").content == small
            head = client.head(f"/v2/sent/large/blobs/{large_digest}")
            assert head.content == b""
            assert head.headers["content-length"] == str(len(large))

        def pull(_: int) -> bytes:
            with httpx.Client(base_url=running.url, timeout=30) as one:
                return one.get(f"/v2/sent/large/blobs/{large_digest}").content

        with ThreadPoolExecutor(4) as pool:
            assert all(body == large for body in pool.map(pull, range(8)))
        # Each worker measured both methods on its first sends, and said which it keeps: a
        # send is weighed once its last byte is in the socket, which may be just after the
        # client has read it, so the line may come a moment later.
        deadline = time.monotonic() + 10
        while "blob sends to python-httpx use" not in running.log():
            assert time.monotonic() < deadline, running.log()[-3000:]
            time.sleep(0.05)
        assert "Traceback" not in running.log()


def test_a_client_that_reads_slowly_or_leaves_mid_blob_does_not_disturb_the_others() -> None:
    data = random.Random(5).randbytes(8 << 20)
    with WharfServer(workers=1, config={"http": {"server": "uvicorn"}}) as running:
        digest = _push(running.url, "sent/slow", data)
        address, _, port = running.host.rpartition(":")
        request = f"GET /v2/sent/slow/blobs/{digest} HTTP/1.1\r\nHost: registry\r\n\r\n".encode()
        leaving = socket.create_connection((address, int(port)), timeout=10)
        leaving.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        leaving.sendall(request)
        leaving.recv(10_000)
        slow = socket.create_connection((address, int(port)), timeout=10)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        slow.sendall(request)
        received = b""
        for _ in range(20):  # a slow start: 20 small reads, 0.1 s apart
            received += slow.recv(4096)
            time.sleep(0.1)
        leaving.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        leaving.close()  # a reset in the middle of its body
        # Meanwhile, and after, the worker serves others in full.
        assert httpx.get(f"{running.url}/v2/sent/slow/blobs/{digest}", timeout=30).content == data
        while len(received) < len(data) + 200:
            more = slow.recv(1 << 20)
            if not more:
                break
            received += more
        slow.close()
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert body == data
        assert httpx.get(f"{running.url}/v2/", timeout=10).status_code == 200
        assert "Traceback" not in running.log()
