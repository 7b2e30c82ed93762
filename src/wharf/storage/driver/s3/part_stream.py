"""A part uploaded while its bytes arrive: a request body of known length sent as one part.

A PATCH of 16 MiB buffered into parts waits for the first ``chunksize`` of its body before
any part starts, and sends its tail only once the body has ended; a part that starts with
the body's first bytes overlaps receiving and storing, and is one request instead of two.

The event loop feeds the part (``feed``, a copy of each piece: the caller reuses its
buffer); botocore reads it in a worker thread (``reader``), blocking until bytes come. The
pieces are kept until the part is answered, so a retry reads them all again from the start,
and a part whose body ends early (``abort``) hands them back to be stored another way.

botocore cannot sign a payload it has not seen, so these parts go unsigned
(``UNSIGNED-PAYLOAD``). Over TLS the transport protects them; over plain HTTP the reader
takes the part's MD5 as it sends it, and the part's ETag (the MD5 of its bytes, where the
store does not encrypt with KMS) must match, as a signed payload would have been checked.
"""

from __future__ import annotations

import hashlib
import threading

__all__ = ["PartAborted", "PartReader", "PartStream"]

#: How long a reader waits for the next bytes before giving the request up.
STALL_TIMEOUT = 120.0


class PartAborted(Exception):
    """The part's body ended before its announced size (or the writer gave it up)."""


class PartStream:
    def __init__(self, size: int, number: int) -> None:
        self.size = size
        self.number = number
        self._pieces: list[bytes] = []
        self._fed = 0
        self._aborted = False
        self._ready = threading.Condition()

    @property
    def fed(self) -> int:
        return self._fed

    @property
    def full(self) -> bool:
        return self._fed == self.size

    @property
    def aborted(self) -> bool:
        return self._aborted

    def feed(self, data: memoryview) -> int:
        """Add the start of ``data`` (as much as the part still takes); how many bytes."""
        taken = min(data.nbytes, self.size - self._fed)
        if taken:
            piece = bytes(data[:taken])
            with self._ready:
                self._pieces.append(piece)
                self._fed += taken
                self._ready.notify_all()
        return taken

    def abort(self) -> list[bytes]:
        """Stop the part's readers; the pieces fed so far, for the caller to store."""
        with self._ready:
            self._aborted = True
            self._ready.notify_all()
            return list(self._pieces)

    def reader(self, *, md5: bool) -> PartReader:
        """A new read of the part from its first byte (one per attempt)."""
        return PartReader(self, md5=md5)

    def _piece(self, index: int) -> bytes | None:
        """Piece ``index``, waiting for it; None past the end."""
        with self._ready:
            while index >= len(self._pieces):
                if self._aborted:
                    raise PartAborted(f"part {self.number} ended early")
                if self._fed == self.size:
                    return None
                if not self._ready.wait(STALL_TIMEOUT):
                    # Given up, so its writer stores what did come another way.
                    self._aborted = True
                    raise PartAborted(f"part {self.number}: no bytes for {STALL_TIMEOUT:.0f} s")
            if self._aborted:
                raise PartAborted(f"part {self.number} ended early")
            return self._pieces[index]


class PartReader:
    """What botocore sends: ``read`` returns whole pieces (http.client sends whatever a
    readable body returns), so no byte is copied again. Neither seekable nor tellable, so
    botocore and urllib3 never try to rewind it."""

    def __init__(self, stream: PartStream, *, md5: bool) -> None:
        self._stream = stream
        self._index = 0
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None

    def read(self, amount: int = -1) -> bytes:
        piece = self._stream._piece(self._index)
        if piece is None:
            return b""
        self._index += 1
        if self._md5 is not None:
            self._md5.update(piece)  # releases the GIL for pieces this large
        return piece

    def md5_hex(self) -> str | None:
        """The MD5 of what was read, when this reader took one."""
        return self._md5.hexdigest() if self._md5 is not None else None
