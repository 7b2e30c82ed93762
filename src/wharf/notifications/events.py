"""Events and envelopes, field for field as Distribution writes them (``notifications/event.go``).

Empty fields are left out as Go's ``omitempty`` does, except the request's ``id``, ``method``
and ``useragent``, which Distribution always writes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wharf.observability.context import RequestInfo

__all__ = [
    "BLOB_MEDIA_TYPE",
    "EVENTS_MEDIA_TYPE",
    "Event",
    "Source",
    "Target",
    "envelope",
    "new_event",
]

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
#: What Distribution puts in a blob event's target: it does not know a layer's media type.
BLOB_MEDIA_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Target:
    repository: str
    digest: str = ""
    media_type: str = ""
    size: int = 0
    url: str = ""
    tag: str = ""
    from_repository: str = ""
    references: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": self.digest,
            "length": self.size,
            "repository": self.repository,
            "fromRepository": self.from_repository,
            "url": self.url,
            "tag": self.tag,
            "references": list(self.references),
        }
        return {key: value for key, value in fields.items() if value}


@dataclass(frozen=True, slots=True)
class Source:
    addr: str = ""
    instance_id: str = ""

    def as_dict(self) -> dict[str, str]:
        fields = {"addr": self.addr, "instanceID": self.instance_id}
        return {key: value for key, value in fields.items() if value}


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    timestamp: datetime
    action: str  # push | pull | mount | delete
    target: Target
    request: dict[str, str] = field(default_factory=dict)
    actor: dict[str, str] = field(default_factory=dict)
    source: Source = field(default_factory=Source)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "action": self.action,
            "target": self.target.as_dict(),
            "request": self.request,
            "actor": self.actor,
            "source": self.source.as_dict(),
        }


def _request_record(info: RequestInfo | None) -> dict[str, str]:
    if info is None:
        return {}
    record = {
        "id": info.id,
        "addr": info.addr,
        "host": info.host,
        "method": info.method,
        "useragent": info.useragent,
    }
    return {k: v for k, v in record.items() if v or k in ("id", "method", "useragent")}


def new_event(action: str, target: Target, info: RequestInfo | None, source: Source) -> Event:
    actor = {"name": info.actor} if info is not None and info.actor else {}
    return Event(
        id=str(uuid.uuid4()),
        timestamp=datetime.now(UTC),
        action=action,
        target=target,
        request=_request_record(info),
        actor=actor,
        source=source,
    )


def envelope(events: Sequence[Event]) -> bytes:
    return json.dumps({"events": [event.as_dict() for event in events]}).encode()
