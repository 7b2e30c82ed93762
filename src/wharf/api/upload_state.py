"""The signed ``_state`` every upload session URL carries, in Distribution's own format.

It names the repository, the session, how many bytes the session held when the URL was
given out, and when the session started, HMAC-signed with the upload key, so that any worker
of any instance can check a session URL: it cannot be bent to another repository or session,
and a request made with an old URL is told that the session has moved on (the uploads service
compares the offset with what storage holds, under the session's lease). Every session request
must carry it.

The format is Distribution's (``registry/handlers/hmac.go``): URL-safe base64, with padding,
of the HMAC-SHA256 of the JSON message followed by the message,
``{"Name": ..., "UUID": ..., "Offset": ..., "StartedAt": ...}``. With the same secret,
wharf and Distribution behind one address accept each other's session URLs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from wharf.errors import BlobUploadInvalid

__all__ = ["MAX_STATE_LENGTH", "UploadState", "UploadStateSigner"]

#: Longest ``_state`` accepted: a 255-character name and its JSON fit several times over.
MAX_STATE_LENGTH = 2048
_MAC_SIZE = hashlib.sha256().digest_size


@dataclass(frozen=True, slots=True)
class UploadState:
    name: str
    upload_id: str
    offset: int
    started_at: datetime


def _invalid(upload_id: str, reason: str) -> BlobUploadInvalid:
    return BlobUploadInvalid({"upload": upload_id[:100], "reason": reason})


class UploadStateSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, message: bytes) -> bytes:
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def sign(self, state: UploadState) -> str:
        message = json.dumps(
            {
                "Name": state.name,
                "UUID": state.upload_id,
                "Offset": state.offset,
                "StartedAt": _go_time(state.started_at),
            },
            separators=(",", ":"),
        ).encode()
        return base64.urlsafe_b64encode(self._mac(message) + message).decode()

    def verify(self, token: str | None, name: str, upload_id: str) -> UploadState:
        """The state ``token`` carries, checked against the URL's repository and session;
        BlobUploadInvalid when it is missing, forged, or for another session."""
        if not token:
            raise _invalid(upload_id, "the upload URL has no _state")
        if len(token) > MAX_STATE_LENGTH:
            raise _invalid(upload_id, "_state too long")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise _invalid(upload_id, "_state is not base64") from None
        mac, message = raw[:_MAC_SIZE], raw[_MAC_SIZE:]
        if len(mac) < _MAC_SIZE or not hmac.compare_digest(mac, self._mac(message)):
            raise _invalid(upload_id, "_state signature does not verify")
        try:
            fields = json.loads(message)
            state = UploadState(
                str(fields["Name"]),
                str(fields["UUID"]),
                int(fields["Offset"]),
                _parse_go_time(str(fields["StartedAt"])),
            )
        except (ValueError, KeyError, TypeError):
            raise _invalid(upload_id, "_state is malformed") from None
        if state.name != name or state.upload_id != upload_id or state.offset < 0:
            raise _invalid(upload_id, "_state belongs to another upload")
        return state


def _go_time(moment: datetime) -> str:
    """RFC 3339 with fractional seconds, as Go's time.Time marshals in UTC."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return text.replace(".000000Z", "Z")


def _parse_go_time(text: str) -> datetime:
    # Go writes up to nine fractional digits; Python reads up to six.
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
