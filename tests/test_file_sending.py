"""Sending a stored file from threads: the exact bytes by either method, a slow client that
holds no thread, a client that leaves or stops reading, and the choice of method by what each
cost. Real files and real TCP connections over loopback."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from wharf import file_sending
from wharf.file_sending import (
    ClientGone,
    Method,
    MethodChooser,
    SendStalled,
    client_kind,
    send_file,
)

SIZE = 9 << 20  # several steps of the pread method's buffer, and more than a socket holds


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    data = random.Random(1).randbytes(SIZE)
    path = tmp_path / "blob"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd, data
    finally:
        os.close(fd)


@pytest.fixture
async def connection() -> AsyncIterator[tuple[socket.socket, socket.socket]]:
    """A connected pair: the server side non-blocking, as an event loop's transport has it."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    server.setblocking(False)
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def _receive(client: socket.socket, count: int, delay: float = 0.0) -> bytes:
    """``count`` bytes; with a ``delay``, 64 KiB at a time and a pause after each."""
    received = bytearray()
    most = 64 << 10 if delay else 256 << 10
    while len(received) < count:
        piece = client.recv(min(most, count - len(received)))
        if not piece:
            break
        received += piece
        if delay:
            time.sleep(delay)
    return bytes(received)


def _in_thread(function: object, *args: object) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(function(*args)))  # type: ignore[operator]
    thread.start()
    return thread, result


def _force(monkeypatch: pytest.MonkeyPatch, method: Method) -> None:
    monkeypatch.setattr(file_sending.chooser(""), "pick", lambda: method)


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize(("offset", "count"), [(0, SIZE), (12_345, SIZE - 12_345 - 999), (7, 1)])
async def test_the_exact_bytes_arrive_by_either_method(
    monkeypatch: pytest.MonkeyPatch,
    stored: tuple[int, bytes],
    connection: tuple[socket.socket, socket.socket],
    method: Method,
    offset: int,
    count: int,
) -> None:
    fd, data = stored
    server, client = connection
    _force(monkeypatch, method)
    thread, received = _in_thread(_receive, client, count)
    await send_file(server.fileno(), fd, offset, count)
    thread.join(10)
    assert received == [data[offset : offset + count]]


@pytest.mark.parametrize("method", list(Method))
async def test_a_slow_client_gets_every_byte_and_the_loop_stays_free(
    monkeypatch: pytest.MonkeyPatch,
    stored: tuple[int, bytes],
    connection: tuple[socket.socket, socket.socket],
    method: Method,
) -> None:
    fd, data = stored
    server, client = connection
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
    _force(monkeypatch, method)
    waits = 0
    writable = file_sending._writable

    async def counted(sock: int, limit: float) -> None:
        nonlocal waits
        waits += 1
        await writable(sock, limit)

    monkeypatch.setattr(file_sending, "_writable", counted)
    count = 2 << 20
    thread, received = _in_thread(_receive, client, count, 0.05)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await send_file(server.fileno(), fd, 0, count)
    ticker.cancel()
    thread.join(10)
    assert received == [data[:count]]
    # The send waited on the client for over a second, on the loop rather than in a thread
    # (which waits a moment only), and the loop ran all along.
    assert waits > 5
    assert ticks > 20


async def test_a_client_that_leaves_ends_the_send(
    stored: tuple[int, bytes], connection: tuple[socket.socket, socket.socket]
) -> None:
    fd, _ = stored
    server, client = connection
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    thread, _ = _in_thread(_receive, client, 1 << 20)

    async def leave() -> None:
        await asyncio.to_thread(thread.join, 10)  # a first megabyte arrived
        client.close()  # with a zero linger: a reset

    leaving = asyncio.create_task(leave())
    with pytest.raises((ClientGone, SendStalled)):
        await asyncio.wait_for(send_file(server.fileno(), fd, 0, SIZE), 10)
    await leaving


async def test_a_client_that_stops_reading_is_given_up(
    monkeypatch: pytest.MonkeyPatch,
    stored: tuple[int, bytes],
    connection: tuple[socket.socket, socket.socket],
) -> None:
    fd, _ = stored
    server, _client = connection
    monkeypatch.setattr(file_sending, "STALL_LIMIT", 0.5)
    began = time.monotonic()
    with pytest.raises(SendStalled):
        await send_file(server.fileno(), fd, 0, SIZE)
    assert time.monotonic() - began < 10


async def test_a_file_shorter_than_the_count_is_an_error_not_a_hang(
    stored: tuple[int, bytes], connection: tuple[socket.socket, socket.socket]
) -> None:
    fd, _data = stored
    server, client = connection
    thread, _ = _in_thread(_receive, client, SIZE)
    with pytest.raises(OSError, match="early"):
        await asyncio.wait_for(send_file(server.fileno(), fd, SIZE - 100, 1000), 10)
    server.shutdown(socket.SHUT_RDWR)
    thread.join(10)


def test_each_method_is_tried_then_the_faster_one_is_used_and_the_other_retried() -> None:
    chooser = MethodChooser("skopeo")
    seconds_per_byte = {Method.SENDFILE: 0.3e-9, Method.PREAD: 0.9e-9}
    picked = []
    for _ in range(2 * MethodChooser.TRIALS):
        method = chooser.pick()
        picked.append(method)
        chooser.record(method, 64 << 20, seconds_per_byte[method] * (64 << 20))
    assert picked.count(Method.SENDFILE) == picked.count(Method.PREAD) == MethodChooser.TRIALS
    assert chooser.preferred is Method.SENDFILE
    later = [chooser.pick() for _ in range(MethodChooser.RETRY_EVERY * 2)]
    assert later.count(Method.PREAD) == 2
    # One slow send (a slow client) does not flip the choice: recent medians decide.
    chooser.record(Method.SENDFILE, 64 << 20, 50e-9 * (64 << 20))
    assert chooser.preferred is Method.SENDFILE
    # The host or the clients change: the other method becomes faster, and takes over.
    for _ in range(MethodChooser.KEEP):
        chooser.record(Method.SENDFILE, 64 << 20, 2e-9 * (64 << 20))
    assert chooser.preferred is Method.PREAD
    # Small sends weigh nothing: their fixed costs would decide.
    before = chooser.costs()
    chooser.record(Method.PREAD, 1000, 1.0)
    assert chooser.costs() == before


def test_sends_that_start_together_are_spread_over_the_methods_tried() -> None:
    """A client's layers start at once, before any send is measured: the trials go to both
    methods, not all to the first (nor all to a method that may be the slower here)."""
    chooser = MethodChooser("skopeo")
    together = [chooser.pick() for _ in range(5)]
    assert together.count(Method.SENDFILE) in (2, 3)
    assert together.count(Method.PREAD) in (2, 3)
    for number, method in enumerate(together):  # three sends measured, two cut short
        if number < 3:
            chooser.record(method, 64 << 20, 1e-9 * (64 << 20))
        chooser.done(method)
    picked = []
    for _ in range(2 * MethodChooser.TRIALS):  # one at a time: the trials are finished
        method = chooser.pick()
        picked.append(method)
        chooser.record(method, 64 << 20, 1e-9 * (64 << 20))
        chooser.done(method)
    assert chooser.preferred is not None


def test_kinds_of_clients_are_measured_apart() -> None:
    assert client_kind(b"skopeo/1.9.3 (linux)") == "skopeo"
    assert client_kind(b"containerd/1.7.0+unknown") == "containerd"
    assert client_kind(b"Python-httpx/0.27") == "python-httpx"
    assert client_kind(None) == client_kind(b"") == ""
    assert file_sending.chooser("skopeo") is file_sending.chooser("skopeo")
    assert file_sending.chooser("skopeo") is not file_sending.chooser("containerd")
    for number in range(100):  # a client that makes up agents costs a bounded memory
        file_sending.chooser(f"agent{number}")
    assert len(file_sending._choosers) <= 64


@pytest.mark.parametrize("method", list(Method))
async def test_each_method_is_measured_on_real_sends(
    monkeypatch: pytest.MonkeyPatch,
    stored: tuple[int, bytes],
    connection: tuple[socket.socket, socket.socket],
    method: Method,
) -> None:
    fd, _ = stored
    server, client = connection
    chooser = MethodChooser("test")
    monkeypatch.setitem(file_sending._choosers, "test", chooser)
    monkeypatch.setattr(chooser, "pick", lambda: method)
    thread, _ = _in_thread(_receive, client, SIZE)
    await send_file(server.fileno(), fd, 0, SIZE, "test")
    thread.join(10)
    seconds_per_byte = chooser.costs()[method]
    assert 0 < seconds_per_byte < 1e-6  # well under a second per megabyte
