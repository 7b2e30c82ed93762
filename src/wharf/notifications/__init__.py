"""Webhook notifications in Distribution's format: events, the endpoints they are queued for,
and the service decorators that emit them (handlers never emit events themselves).

    events      what an event and an envelope are (``application/vnd.docker.distribution.
                events.v1+json``)
    endpoint    one endpoint: a bounded queue and a sender with retries and back-off
    sink        every configured endpoint, with their filters
    listener    decorators around a repository's services that turn calls into events
"""

from wharf.notifications.endpoint import Endpoint
from wharf.notifications.events import EVENTS_MEDIA_TYPE, Event, Target, envelope
from wharf.notifications.listener import notifying
from wharf.notifications.sink import EventSink

__all__ = ["EVENTS_MEDIA_TYPE", "Endpoint", "Event", "EventSink", "Target", "envelope", "notifying"]
