"""uvicorn's httptools protocol with limits on the request head, as granian (hyper) has.

httptools accepts a request line and header block of any size and any number of fields, so a
client could make a worker buffer megabytes before the app is called. Bytes of the head are
counted as they arrive (each received piece that leaves the head unfinished), fields as they
are parsed; past either limit the connection gets a 431 and is closed.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEADER_FIELDS", "MAX_HEAD_BYTES", "LimitedHttpToolsProtocol"]

#: About hyper's HTTP/1 buffer limit and field count, which granian keeps.
MAX_HEAD_BYTES = 400 * 1024
MAX_HEADER_FIELDS = 100

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\n"
    b"connection: close\r\n"
    b"\r\n"
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    _in_head = True  # until the first request's headers are complete
    _head_bytes = 0
    _head_fields = 0
    _refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if not self._in_head:
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES or self._head_fields > MAX_HEADER_FIELDS:
            self._refused = True
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes, self._head_fields = True, 0, 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
