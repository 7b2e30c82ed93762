"""The writers' buffer of pieces: the bytes come out as they went in, copied once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wharf.storage.driver.piece_buffer import PieceBuffer

_steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(max_size=64)),
        st.tuples(st.just("prepend"), st.binary(max_size=64)),
        st.tuples(st.just("take"), st.integers(min_value=0, max_value=100)),
        st.tuples(st.just("clear"), st.none()),
    ),
    max_size=60,
)


@given(_steps)
def test_it_holds_what_a_bytearray_would(steps: list[tuple[str, object]]) -> None:
    buffer, model = PieceBuffer(), bytearray()
    for action, value in steps:
        if action == "append":
            assert isinstance(value, bytes)
            buffer.append(memoryview(value))
            model += value
        elif action == "prepend":
            assert isinstance(value, bytes)
            buffer.prepend(value)
            model[:0] = value
        elif action == "take":
            assert isinstance(value, int)
            assert buffer.take(value) == bytes(model[:value])
            del model[:value]
        else:
            buffer.clear()
            model.clear()
        assert len(buffer) == len(model)
        assert bool(buffer) == bool(model)
    assert buffer.take(len(buffer)) == bytes(model)


def test_a_written_buffer_may_be_reused_at_once() -> None:
    source = bytearray(b"abcd")
    buffer = PieceBuffer()
    buffer.append(memoryview(source))
    source[:] = b"wxyz"
    assert buffer.take(4) == b"abcd"


def test_a_whole_piece_is_taken_without_a_copy() -> None:
    buffer = PieceBuffer()
    buffer.append(b"x" * 1000)
    first = buffer.take(1000)
    buffer.prepend(first)
    assert buffer.take(1000) is first
