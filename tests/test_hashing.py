from __future__ import annotations

import hashlib
import os
import struct

import pytest

from wharf.hashing import new_hasher, restore_hasher, resumable_available

pytestmark = pytest.mark.skipif(not resumable_available(), reason="libcrypto not loadable")


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 127, 128, 129, 4097, 100_003])
def test_state_round_trip_continues_the_hash(algorithm: str, size: int) -> None:
    data = os.urandom(size)
    for split in sorted({0, size // 3, size}):
        hasher = new_hasher(algorithm)
        hasher.update(data[:split])
        state = hasher.state()
        assert state is not None
        resumed = restore_hasher(algorithm, state)
        assert resumed is not None
        resumed.update(bytearray(data[split:]))
        assert resumed.hexdigest() == hashlib.new(algorithm, data).hexdigest()
        assert hasher.hexdigest() == hashlib.new(algorithm, data[:split]).hexdigest()


def test_state_is_gos_binary_form() -> None:
    """Distribution writes Go's MarshalBinary form; ours must be the same bytes."""
    hasher = new_hasher("sha256")
    hasher.update(b"abc")
    state = hasher.state()
    assert state is not None
    assert state[:4] == b"sha\x03"
    assert len(state) == 4 + 32 + 64 + 8
    initial = struct.pack(
        ">8I",
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
        0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
    )  # fmt: skip
    assert state[4:36] == initial  # fewer than 64 bytes: no block compressed yet
    assert state[36:39] == b"abc"
    assert state[39:100] == bytes(61)
    assert state[100:] == struct.pack(">Q", 3)


def test_memoryview_and_readonly_inputs() -> None:
    data = os.urandom(1000)
    hasher = new_hasher("sha256")
    hasher.update(memoryview(data)[:500])
    hasher.update(memoryview(bytearray(data))[500:])
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hasher.size == 1000


@pytest.mark.parametrize("state", [b"", b"sha\x03" + bytes(10), b"xxx\x03" + bytes(104)])
def test_bad_states_are_refused(state: bytes) -> None:
    assert restore_hasher("sha256", state) is None
