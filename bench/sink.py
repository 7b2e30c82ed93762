"""A trivial HTTP server with no work behind it, to measure the benchmark client's ceiling.

It answers the requests ``bench.client`` makes for pushes and pulls as a registry would, but
does nothing else: a GET (or HEAD) of ``/v2/<name>/blobs/<digest>`` sends ``--size`` bytes
from one preallocated buffer with ``sendall``; POST answers 202 with a Location, PATCH reads
and drops its body and answers 202, PUT reads and drops its body and answers 201. One thread
per connection; the data calls release the GIL.

Run: ``python -m bench.sink --port PORT --size BYTES`` (it prints ``ready`` when listening).
"""

from __future__ import annotations

import argparse
import socket
import threading

__all__ = ["main"]

_RECV = 1 << 20


def _read_head(sock: socket.socket, pending: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in pending:
        data = sock.recv(65536)
        if not data:
            return None
        pending += data
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    pending[:] = rest
    return head


def _drain(sock: socket.socket, pending: bytearray, length: int, buffer: memoryview) -> None:
    length -= len(pending)
    pending.clear()
    while length > 0:
        count = sock.recv_into(buffer, min(length, len(buffer)))
        if not count:
            raise ConnectionError("client went away")
        length -= count


def _serve(sock: socket.socket, payload: memoryview) -> None:
    pending = bytearray()
    buffer = memoryview(bytearray(_RECV))
    with sock:
        while True:
            head = _read_head(sock, pending)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            _drain(sock, pending, length, buffer)
            path = target.partition("?")[0]
            if method in ("GET", "HEAD") and "/blobs/" in path:
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(payload)
                )
                if method == "GET":
                    sock.sendall(payload)
                continue
            if method == "POST":
                status = "202 Accepted"
                extra = f"Location: {path.rstrip('/')}/0123\r\n"
            elif method == "PATCH":
                status, extra = "202 Accepted", f"Location: {path}\r\n"
            elif method == "PUT":
                status, extra = "201 Created", ""
            else:
                status, extra = "404 Not Found", ""
            sock.sendall(f"HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\n\r\n".encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, required=True, help="bytes per blob GET")
    args = parser.parse_args(argv)
    payload = memoryview(bytes(args.size))
    listener = socket.create_server(("127.0.0.1", args.port), backlog=64)
    print("ready", flush=True)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve, args=(sock, payload), daemon=True).start()


if __name__ == "__main__":
    main()
