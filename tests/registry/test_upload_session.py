from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wharf.registry.upload_session import (
    Held,
    SessionMemo,
    format_started_at,
    parse_started_at,
)
from wharf.storage.driver import Lease


def test_started_at_is_distributions_format_and_reads_back() -> None:
    moment = datetime(2026, 12, 6, 15, 4, 5, 999, tzinfo=UTC)
    assert format_started_at(moment) == b"2026-12-06T15:04:05Z"
    assert parse_started_at(format_started_at(moment)) == moment.replace(microsecond=0)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"2026-12-06T15:04:05.123456789Z\n", datetime(2026, 12, 6, 15, 4, 5, 123456, tzinfo=UTC)),
        (b"2026-12-06T15:04:05.123456Z", datetime(2026, 12, 6, 15, 4, 5, 123456, tzinfo=UTC)),
        (b"2026-12-06T17:04:05+02:00", datetime(2026, 12, 6, 15, 4, 5, tzinfo=UTC)),
        (b"2026-12-06T15:04:05", datetime(2026, 12, 6, 15, 4, 5, tzinfo=UTC)),
        (b"not a time", None),
        (b"\xff\xfe", None),
    ],
)
def test_started_at_from_other_writers(content: bytes, expected: datetime | None) -> None:
    assert parse_started_at(content) == expected


class _Turned(Lease):
    def __init__(self, turn: int | None) -> None:
        self._turn = turn

    @property
    def turn(self) -> int | None:
        return self._turn

    def check(self) -> None:
        pass

    async def release(self, *, deleted: bool = False) -> None:
        pass


@pytest.mark.parametrize(
    ("held_turn", "memo_turn", "follows"),
    [(5, 4, True), (6, 4, False), (4, 4, False), (5, None, False), (None, 4, True)],
)
def test_a_memo_is_followed_only_by_the_next_turn(
    held_turn: int | None, memo_turn: int | None, follows: bool
) -> None:
    memo = SessionMemo(size=10, hash_state=b"", writer_state=None, turn=memo_turn)
    assert Held(_Turned(held_turn), memo).follows(memo) is follows
