"""uvicorn's httptools protocol with limits on the request head, as granian (hyper) has.

httptools accepts a request line and header block of any size and any number of fields, so a
client could make a worker buffer megabytes before the app is called. Bytes of the head are
counted as they arrive (each received piece that leaves the head unfinished), fields as they
are parsed; past either limit the connection gets a 431 and is closed.

It also keeps a request body's pieces as parsed until the app receives them (``_Pieces``),
rather than copying them twice on their way.
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
