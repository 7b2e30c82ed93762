"""Resumable SHA-256 and SHA-512 whose state can be saved and restored as plain bytes.

An upload may continue on another process, so the hash of what was received so far must be
kept in storage. ``hashlib`` cannot export its state, and pickling anything is out of the
question, so this module drives OpenSSL's SHA functions through ``ctypes`` over a context
buffer it owns. The saved form is Go's ``encoding.BinaryMarshaler`` form of ``crypto/sha256``
and ``crypto/sha512`` (the one Distribution writes under ``hashstates/``), so upload sessions
are portable between wharf and Distribution.

``ctypes`` releases the GIL during each foreign call, so hashing in a worker thread runs in
parallel with the event loop. Where libcrypto cannot be loaded, a pure ``hashlib`` hasher is
used; its state cannot be saved, and a resumed upload re-reads what was written instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import struct
from typing import Protocol

__all__ = ["Hasher", "new_hasher", "restore_hasher", "resumable_available"]


class Hasher(Protocol):
    algorithm: str
    size: int

    def update(self, data: bytes | bytearray | memoryview) -> None: ...
    def hexdigest(self) -> str: ...
    def state(self) -> bytes | None: ...


class _Spec:
    def __init__(
        self, name: str, ctx_size: int, word: str, block: int, digest_size: int, magic: bytes
    ) -> None:
        self.name, self.ctx_size, self.word = name, ctx_size, word
        self.block, self.digest_size, self.magic = block, digest_size, magic
        self.word_size = struct.calcsize("<" + word)


# OpenSSL's SHA256_CTX: h[8] u32, Nl, Nh u32, data[64 bytes], num, md_len u32 (112 bytes).
# SHA512_CTX: h[8] u64, Nl, Nh u64, data[128 bytes], num, md_len u32 (216 bytes).
_SPECS = {
    "sha256": _Spec("SHA256", 112, "I", 64, 32, b"sha\x03"),
    "sha512": _Spec("SHA512", 216, "Q", 128, 64, b"sha\x07"),
}


def _load_libcrypto() -> ctypes.CDLL | None:
    for name in (ctypes.util.find_library("crypto"), "libcrypto.so.3", "libcrypto.so"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            for spec in _SPECS.values():
                for suffix in ("_Init", "_Update", "_Final"):
                    getattr(lib, spec.name + suffix)
        except (OSError, AttributeError):
            continue
        for spec in _SPECS.values():
            getattr(lib, spec.name + "_Init").argtypes = [ctypes.c_void_p]
            getattr(lib, spec.name + "_Update").argtypes = [
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_size_t,
            ]
            getattr(lib, spec.name + "_Final").argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        return lib
    return None


_LIB = _load_libcrypto()


def resumable_available() -> bool:
    return _LIB is not None


class _OpenSSLHasher:
    """A SHA context in a buffer of ours, so that its state is ours to save."""

    def __init__(self, algorithm: str) -> None:
        assert _LIB is not None
        self.algorithm = algorithm
        self._spec = _SPECS[algorithm]
        self._ctx = ctypes.create_string_buffer(self._spec.ctx_size)
        self._update = getattr(_LIB, self._spec.name + "_Update")
        getattr(_LIB, self._spec.name + "_Init")(self._ctx)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        size = memoryview(data).nbytes
        if not size:
            return
        if isinstance(data, bytes):
            self._update(self._ctx, data, size)  # passed as a pointer, without a copy
        else:
            view = memoryview(data).cast("B")
            if view.readonly:
                self._update(self._ctx, bytes(view), size)
            else:
                self._update(self._ctx, (ctypes.c_char * size).from_buffer(view), size)
        self.size += size

    def hexdigest(self) -> str:
        spec = self._spec
        ctx_copy = ctypes.create_string_buffer(self._ctx.raw, spec.ctx_size)
        out = ctypes.create_string_buffer(spec.digest_size)
        assert _LIB is not None
        getattr(_LIB, spec.name + "_Final")(out, ctx_copy)
        return out.raw.hex()

    def state(self) -> bytes:
        """Go's ``MarshalBinary`` form: magic, H words big-endian, block buffer, length."""
        spec, raw = self._spec, self._ctx.raw
        words = struct.unpack_from("<8" + spec.word, raw, 0)
        buffer_offset = 8 * spec.word_size + 2 * spec.word_size
        pending = self.size % spec.block
        block = raw[buffer_offset : buffer_offset + pending].ljust(spec.block, b"\0")
        return (
            spec.magic
            + struct.pack(">8" + spec.word, *words)
            + block
            + struct.pack(">Q", self.size)
        )

    @classmethod
    def from_state(cls, algorithm: str, state: bytes) -> _OpenSSLHasher:
        hasher = cls(algorithm)
        spec = hasher._spec
        word_bytes = 8 * spec.word_size
        expected = len(spec.magic) + word_bytes + spec.block + 8
        if len(state) != expected or not state.startswith(spec.magic):
            raise ValueError("not a saved hash state")
        words = struct.unpack_from(">8" + spec.word, state, len(spec.magic))
        block = state[len(spec.magic) + word_bytes : len(spec.magic) + word_bytes + spec.block]
        (size,) = struct.unpack_from(">Q", state, expected - 8)
        bits = size * 8
        mask = (1 << (spec.word_size * 8)) - 1
        pending = size % spec.block
        ctx = bytearray(spec.ctx_size)
        struct.pack_into("<8" + spec.word, ctx, 0, *words)
        struct.pack_into(
            "<2" + spec.word, ctx, word_bytes, bits & mask, (bits >> (spec.word_size * 8)) & mask
        )
        offset = word_bytes + 2 * spec.word_size
        ctx[offset : offset + pending] = block[:pending]
        struct.pack_into("<2I", ctx, offset + spec.block, pending, spec.digest_size)
        ctypes.memmove(hasher._ctx, bytes(ctx), spec.ctx_size)
        hasher.size = size
        return hasher


class _HashlibHasher:
    """Fallback without a saveable state."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += memoryview(data).nbytes

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def state(self) -> None:
        return None


def new_hasher(algorithm: str) -> Hasher:
    if algorithm not in _SPECS:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    if _LIB is not None:
        return _OpenSSLHasher(algorithm)
    return _HashlibHasher(algorithm)


def restore_hasher(algorithm: str, state: bytes) -> Hasher | None:
    """A hasher continuing from a saved state, or None when the state cannot be used."""
    if _LIB is None or algorithm not in _SPECS:
        return None
    try:
        return _OpenSSLHasher.from_state(algorithm, state)
    except (ValueError, struct.error):
        return None
