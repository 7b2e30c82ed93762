"""An upload session as a request holds it: the writer and hash of its bytes, what a
process remembers of it between requests, the lease the request holds, and the
``startedat`` file that marks it open (see :mod:`wharf.registry.uploads`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from wharf.hashing import Hasher
from wharf.storage.driver import FileWriter, Lease, ResumeState

__all__ = ["Held", "SessionMemo", "UploadSession", "format_started_at", "parse_started_at"]


@dataclass(frozen=True, slots=True)
class SessionMemo:
    """What a session's last request in this process left behind."""

    size: int
    hash_state: bytes
    writer_state: ResumeState | None
    turn: int | None
    #: Every byte of the session so far came through this process, in requests that each
    #: continued from the last one's memory (see ``UploadSession.received_here``).
    received_here: bool = False

    @property
    def memory_size(self) -> int:
        """Roughly the bytes keeping it takes."""
        writer = self.writer_state.memory_size if self.writer_state is not None else 0
        return 256 + len(self.hash_state) + writer


def format_started_at(moment: datetime) -> bytes:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()


def parse_started_at(content: bytes) -> datetime | None:
    text = content.decode("ascii", "replace").strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class UploadSession:
    """An open session: the writer appending to its data and the hash of what it holds.

    ``received_here``: this process received every byte of it and hashed exactly the bytes
    its writer stored, so the hash describes what storage holds even where leases exclude
    only this machine's processes. The writer holds what it stored by identity (the S3
    parts and pending objects by ETag), so bytes another machine wrote beside them fail the
    commit instead of joining it."""

    def __init__(
        self,
        upload_id: str,
        writer: FileWriter,
        hasher: Hasher | None,
        *,
        received_here: bool = False,
    ) -> None:
        self.id = upload_id
        self.writer = writer
        self.hasher = hasher
        self.received_here = received_here

    @property
    def size(self) -> int:
        return self.writer.size


class Held:
    """A request's hold on a session: its lease, what this process remembered of the session
    when it was taken, and whether the request deleted the session."""

    __slots__ = ("deleted", "lease", "memo")

    def __init__(self, lease: Lease, memo: SessionMemo | None) -> None:
        self.lease = lease
        self.memo = memo
        self.deleted = False

    def follows(self, memo: SessionMemo) -> bool:
        """Whether nobody held the lease since ``memo`` was left, as far as turns tell (where
        the driver counts none, the caller compares sizes)."""
        turn = self.lease.turn
        return turn is None or (memo.turn is not None and turn == memo.turn + 1)
